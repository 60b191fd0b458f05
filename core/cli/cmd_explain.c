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
    int json;
    int rc = velo_sqlcli_args(&c, argc, argv, explain_usage, &json);
    if (rc >= 0) {
        return rc;
    }
    struct velo_job_opts opts = {
        .stdout_format = VELO_FORMAT_JSON,
        .progress_fd = -1,
    };
    rc = velo_sqlcli_prepare(&c, &opts, 0, 0);
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
