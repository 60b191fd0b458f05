/*
 * Small file-system helpers shared by the file connector and the job's
 * checkpoints.
 */
#ifndef VELO_UTIL_FSUTIL_H
#define VELO_UTIL_FSUTIL_H

/** fsync a directory, so a rename or a new file in it is durable.
 *  @return VELO_OK or VELO_ERR (errno set). */
int velo_fsync_dir(const char *dir);

#endif /* VELO_UTIL_FSUTIL_H */
