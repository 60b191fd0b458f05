/*
 * File-system helpers (see fsutil.h).
 */
#include <fcntl.h>
#include <unistd.h>

#include <velo/plugin.h>

#include "util/fsutil.h"

int velo_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return VELO_ERR;
    }
    int rc = fsync(fd) == 0 ? VELO_OK : VELO_ERR;
    close(fd);
    return rc;
}
