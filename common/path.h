/* path.h -- small file-system path helpers. */
#ifndef SLODRILL_PATH_H
#define SLODRILL_PATH_H

#include "common/compiler.h"

/* Creates path and every missing parent (mode 0755), like mkdir -p. 0, or
 * -1 with errno set. */
int path_mkdirs(const char *path) WUR;

#endif
