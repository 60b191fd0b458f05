/*
 * velo explain: the plan of an application: operators, their output
 * schemas, which keep state and how much, and what emits when.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/sqlcli.h"
#include "formats/format.h"

static const char explain_usage[] =
    "Usage: velo explain [FILE.sql | -e 'SQL'] [--format text|json]\n"
    "\n"
    "Print the plan of each statement without running it: the operators\n"
    "from source to sink, the schema each one outputs, the state it keeps\n"
    "(groups, open windows, buffered rows) and when it emits.\n"
    "\n"
    "Options:\n"
    "  -e, --execute SQL   the SQL text itself\n"
    "  --format text|json\n";

int velo_cmd_explain(int argc, char **argv)
{
    struct velo_sqlcli c;
    memset(&c, 0, sizeof(c));
    c.verb = "explain";
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            printf("%s%s", explain_usage, velo_cli_common_help);
            return VELO_EXIT_OK;
        }
        if ((strcmp(a, "-e") == 0 || strcmp(a, "--execute") == 0) &&
            i + 1 < argc) {
            c.inline_sql = argv[++i];
        } else if (strcmp(a, "--format") == 0 && i + 1 < argc) {
            const char *f = argv[++i];
            if (strcmp(f, "json") == 0) {
                json = 1;
            } else if (strcmp(f, "text") != 0) {
                fprintf(stderr, "velo explain: unknown format '%s' (use "
                                "text or json)\n", f);
                return VELO_EXIT_USAGE;
            }
        } else if (a[0] == '-' && a[1] != '\0') {
            int r = velo_cli_common_opt(&c.common, argc, argv, &i);
            if (r <= 0) {
                if (r == 0) {
                    fprintf(stderr, "velo explain: unknown option '%s'\n",
                            a);
                }
                return VELO_EXIT_USAGE;
            }
        } else if (c.file == NULL) {
            c.file = a;
        } else {
            fprintf(stderr, "velo explain: more than one file given\n");
            return VELO_EXIT_USAGE;
        }
    }
    struct velo_job_opts opts = {
        .stdout_format = VELO_FORMAT_JSON,
        .progress_fd = -1,
    };
    int rc = velo_sqlcli_prepare(&c, &opts, 0, 0);
    if (rc == VELO_EXIT_OK) {
        char *text = velo_plan_explain(velo_job_plan(c.job), json);
        if (text == NULL) {
            fprintf(stderr, "velo explain: out of memory\n");
            rc = VELO_EXIT_FAILURE;
        } else {
            fputs(text, stdout);
            free(text);
        }
    }
    velo_sqlcli_free(&c);
    return rc;
}
