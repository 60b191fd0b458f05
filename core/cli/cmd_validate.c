/*
 * velo validate: report every error (and warning) in an application
 * without running it. Sources are opened to learn their schemas, as a run
 * would, but nothing is consumed or written.
 */
#include <stdio.h>
#include <string.h>

#include "cli/sqlcli.h"
#include "formats/format.h"

static const char validate_usage[] =
    "Usage: velo validate [FILE.sql | -e 'SQL'] [--format text|json]\n"
    "\n"
    "Check the statements: syntax, names, types, properties and the\n"
    "rules of aggregates, windows and emit modes. Every error found is\n"
    "reported with its code, line and column, the source line with a\n"
    "caret, and a hint. Exit 0 when there is no error, 1 otherwise.\n"
    "\n"
    "Options:\n"
    "  -e, --execute SQL   the SQL text itself\n"
    "  --format text|json  json: an array of diagnostics for tools\n";

int velo_cmd_validate(int argc, char **argv)
{
    struct velo_sqlcli c;
    memset(&c, 0, sizeof(c));
    c.verb = "validate";
    c.annotations = 1;
    int json;
    int rc = velo_sqlcli_args(&c, argc, argv, validate_usage, &json);
    if (rc >= 0) {
        return rc;
    }
    struct velo_job_opts opts = {
        .stdout_format = VELO_FORMAT_JSON,
        .progress_fd = -1,
    };
    rc = velo_sqlcli_prepare(&c, &opts, json, 1);
    if (json && c.diags.n == 0 && rc == VELO_EXIT_OK) {
        printf("[]\n");
    }
    if (rc == VELO_EXIT_OK && !json) {
        const struct velo_plan *plan = velo_job_plan(c.job);
        printf("%s: OK (%zu statement%s%s)\n", c.filename,
               plan->nstatements, plan->nstatements == 1 ? "" : "s",
               c.diags.n > 0 ? ", with warnings" : "");
    }
    velo_sqlcli_free(&c);
    return rc;
}
