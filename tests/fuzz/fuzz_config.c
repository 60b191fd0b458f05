/*
 * Fuzz the configuration loader: any bytes must give VELO_OK or a clean
 * error, never a crash, a leak or an unbounded allocation.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <velo/log.h>

#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct velo_config cfg;
    if (velo_config_init(&cfg) != VELO_OK) {
        return 0;
    }
    char err[VELO_CONFIG_ERR_MAX * 4];
    int rc = velo_config_load_buffer(&cfg, "fuzz.yaml", (const char *)data,
                                     size, err, sizeof(err));
    /* An error always says something; success leaves no message. */
    if (rc != VELO_OK && err[0] == '\0') {
        __builtin_trap();
    }
    if (rc == VELO_OK) {
        char diff[1024];
        struct velo_config defaults;
        if (velo_config_init(&defaults) == VELO_OK) {
            velo_config_diff(&defaults, &cfg, diff, sizeof(diff));
            velo_config_free(&defaults);
        }
    }
    velo_config_free(&cfg);
    return 0;
}
