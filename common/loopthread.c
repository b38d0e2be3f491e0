/* loopthread.c -- an event loop on a thread of its own. */
#include "common/loopthread.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#define THREAD_RT_PRIORITY 10 /* of 1..99: above every normal thread, below the kernel's */

static void *loopthread_main(void *arg)
{
    struct loopthread *lt = arg;
    event_base_loop(lt->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

int loopthread_start(struct loopthread *lt)
{
    if (pthread_create(&lt->th, NULL, loopthread_main, lt) != 0) return -1;
    lt->running = 1;
    return 0;
}

void loopthread_stop(struct loopthread *lt)
{
    if (!lt->running) return;
    /* loopexit, not loopbreak: a break asked before the thread has entered
     * its loop is forgotten when the loop starts; an exit is a timer the
     * loop still finds. */
    event_base_loopexit(lt->base, NULL);
    pthread_join(lt->th, NULL);
    lt->running = 0;
}

int thread_realtime(char *err, size_t errlen)
{
    struct sched_param sp;
    int rc;

    memset(&sp, 0, sizeof sp);
    sp.sched_priority = THREAD_RT_PRIORITY;
    rc = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);
    if (rc == 0) return 0;
    snprintf(err, errlen, "cannot run at real-time priority: %s%s", strerror(rc),
             rc == EPERM ? " (needs root, CAP_SYS_NICE or `ulimit -r 10`)" : "");
    return -1;
}
