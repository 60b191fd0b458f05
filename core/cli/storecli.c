/*
 * Shared by velo user and velo apikey: load the configuration, open the
 * auth store under server.data_dir, run the subcommand, close everything.
 */
#include <stdio.h>

#include "cli/cli.h"
#include "config/config.h"
#include "store/authstore.h"

int velo_cli_with_authstore(const struct velo_cli_common *common,
                            const char *verb,
                            int (*run)(struct velo_authstore *s,
                                       const void *opts),
                            const void *opts)
{
    struct velo_config cfg;
    if (velo_cli_load_config(common, &cfg) != VELO_OK) {
        velo_config_free(&cfg);
        return VELO_EXIT_FAILURE;
    }
    char err[1024];
    struct velo_authstore *s = velo_authstore_open(
        cfg.data_dir, cfg.auth_pbkdf2_iterations, err, sizeof(err));
    if (s == NULL) {
        fprintf(stderr, "velo %s: %s\n", verb, err);
        velo_config_free(&cfg);
        return VELO_EXIT_FAILURE;
    }
    int rc = run(s, opts);
    velo_authstore_close(s);
    velo_config_free(&cfg);
    return rc;
}
