/* path.c -- small file-system path helpers. */
#include "common/path.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

int path_mkdirs(const char *path)
{
    char tmp[PATH_MAX];
    size_t i, n = strlen(path);

    if (n == 0 || n >= sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(tmp, path, n + 1);
    for (i = 1; i <= n; i++) {
        if (tmp[i] == '/' || tmp[i] == '\0') {
            char c = tmp[i];
            tmp[i] = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
            tmp[i] = c;
        }
    }
    return 0;
}
