/*
 * velo version: the server version, commit, and plugin ABI.
 */
#include <stdio.h>
#include <string.h>

#include <velo/plugin.h>

#include "cli/cli.h"

int velo_cmd_version(int argc, char **argv)
{
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("Usage: velo version [--format text|json]\n\n"
                   "Print the Velostream version, the git commit it was "
                   "built from,\nand the plugin ABI it provides.\n");
            return VELO_EXIT_OK;
        }
        if (strcmp(argv[i], "--format") == 0 && i + 1 < argc) {
            const char *f = argv[++i];
            if (strcmp(f, "json") == 0) {
                json = 1;
            } else if (strcmp(f, "text") != 0) {
                fprintf(stderr, "velo version: unknown format '%s' "
                                "(use text or json)\n", f);
                return VELO_EXIT_USAGE;
            }
            continue;
        }
        fprintf(stderr, "velo version: unexpected argument '%s'\n", argv[i]);
        return VELO_EXIT_USAGE;
    }
    if (json) {
        printf("{\"version\":\"%s\",\"commit\":\"%s\",\"abi\":\"%d.%d\"}\n",
               VELO_VERSION, VELO_GIT_COMMIT, VELO_ABI_MAJOR, VELO_ABI_MINOR);
    } else {
        printf("velo %s (commit %s, plugin ABI %d.%d)\n", VELO_VERSION,
               VELO_GIT_COMMIT, VELO_ABI_MAJOR, VELO_ABI_MINOR);
    }
    return VELO_EXIT_OK;
}
