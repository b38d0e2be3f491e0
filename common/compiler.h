/* compiler.h -- attribute shorthands used across slodrill. */
#ifndef SLODRILL_COMPILER_H
#define SLODRILL_COMPILER_H

#define WUR __attribute__((warn_unused_result))
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#define UNUSED(x) ((void)(x))

#endif
