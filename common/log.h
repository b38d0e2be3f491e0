/* log.h -- leveled logging to stderr, one line per message, thread-safe. */
#ifndef SLODRILL_LOG_H
#define SLODRILL_LOG_H

#include "common/compiler.h"

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/* Messages above this level are dropped. Default LOG_WARN; SLODRILL_LOG=debug
 * (error|warn|info|debug) in the environment overrides it at first use. */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/* tag names the module ("router", "fake:primary"); borrowed. */
void log_msg(enum log_level level, const char *tag, const char *fmt, ...) PRINTF_LIKE(3, 4);

#define log_error(tag, ...) log_msg(LOG_ERROR, tag, __VA_ARGS__)
#define log_warn(tag, ...) log_msg(LOG_WARN, tag, __VA_ARGS__)
#define log_info(tag, ...) log_msg(LOG_INFO, tag, __VA_ARGS__)
#define log_debug(tag, ...) log_msg(LOG_DEBUG, tag, __VA_ARGS__)

#endif
