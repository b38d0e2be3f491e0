/* loopthread.c -- an event loop on a thread of its own. */
#include "common/loopthread.h"

#include <event2/event.h>

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
