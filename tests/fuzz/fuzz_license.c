/*
 * libFuzzer target for the license parser and verifier: any bytes must
 * produce a status and a reason, never a crash, a leak or a read past the
 * buffer. The clock is fixed so a run is reproducible.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "plugin/license-internal.h"
#include "plugin/license.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct velo_license lic;
    const time_t now = 1790000000; /* 2026-09-21 */
    int rc = velo_license_verify_buffer((const char *)data, size, now, &lic);
    int usable = lic.status == VELO_LICENSE_VALID ||
                 lic.status == VELO_LICENSE_IN_GRACE;
    /* The return value and the status must agree, and a refusal must
     * always say why. */
    if ((rc == 0) != usable ||
        (lic.status != VELO_LICENSE_VALID && lic.reason[0] == '\0') ||
        memchr(lic.reason, '\0', sizeof(lic.reason)) == NULL) {
        __builtin_trap();
    }
    char text[4096];
    velo_license_describe(&lic, text, sizeof(text));
    velo_license_why_not(&lic, "rbac", text, sizeof(text));
    (void)velo_license_has_feature(&lic, "rbac");
    return 0;
}
