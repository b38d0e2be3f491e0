/* loopthread.h -- an event loop on a thread of its own.
 *
 * Callers embed struct loopthread; set base, then start. Stopping asks the
 * loop to exit (a timer the loop finds even if it has not started yet) and
 * joins the thread. */
#ifndef SLODRILL_LOOPTHREAD_H
#define SLODRILL_LOOPTHREAD_H

#include <pthread.h>
#include <stddef.h>
#include "common/compiler.h"

struct event_base;

struct loopthread {
    struct event_base *base; /* borrowed; set before loopthread_start */
    pthread_t th;            /* private */
    int running;             /* private */
};

/* Runs base's loop (not leaving it when idle) on a new thread. 0 or -1.
 * evthread_use_pthreads() must have been called before base was made. */
int loopthread_start(struct loopthread *lt) WUR;
/* Ends the loop and joins the thread; does nothing when not running. */
void loopthread_stop(struct loopthread *lt);

/* Puts the calling thread (only it: threads it starts later inherit, ones
 * started before do not) in the SCHED_FIFO real-time class at a low
 * priority, so a timer it sleeps on wakes it at once even while other
 * threads keep every CPU busy. Linux throttles real-time threads to 95% of a
 * CPU, so a runaway loop cannot take the machine. Needs CAP_SYS_NICE or an
 * RLIMIT_RTPRIO; 0, or -1 with why in err. */
int thread_realtime(char *err, size_t errlen) WUR;

#endif
