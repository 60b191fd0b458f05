/*
 * Reports: text for a terminal (pass/fail per assertion with what was
 * observed, the evidence under each failure, then time and rate), JSON
 * for tools, and JUnit XML for CI systems (one testsuite per output, one
 * testcase per assertion, failures with their message and evidence).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testkit/testkit-internal.h"

struct velo_tk_result *velo_tk_report_add(struct velo_tk_report *rep,
                                          const char *output, const char *type)
{
    if (rep->n == rep->cap) {
        size_t cap = rep->cap ? rep->cap * 2 : 16;
        struct velo_tk_result *nr = realloc(rep->r, cap * sizeof(*nr));
        if (nr == NULL) {
            return NULL;
        }
        rep->r = nr;
        rep->cap = cap;
    }
    struct velo_tk_result *r = &rep->r[rep->n++];
    memset(r, 0, sizeof(*r));
    r->output = strdup(output != NULL ? output : "");
    r->type = strdup(type);
    r->name = strdup(type);
    return r;
}

void velo_tk_report_free(struct velo_tk_report *rep)
{
    for (size_t i = 0; i < rep->n; i++) {
        struct velo_tk_result *r = &rep->r[i];
        free(r->output);
        free(r->name);
        free(r->type);
        free(r->observed);
        free(r->expected);
        free(r->message);
        json_decref(r->evidence);
    }
    free(rep->r);
    free(rep->query);
    free(rep->explanation);
    json_decref(rep->inputs);
    memset(rep, 0, sizeof(*rep));
}

size_t velo_tk_report_failed(const struct velo_tk_report *rep)
{
    size_t n = 0;
    for (size_t i = 0; i < rep->n; i++) {
        n += !rep->r[i].passed;
    }
    return n;
}

static double rate(const struct velo_tk_report *rep)
{
    return rep->elapsed_s > 0 ? (double)rep->records_in / rep->elapsed_s : 0;
}

char *velo_tk_report_text(const struct velo_tk_report *rep)
{
    struct velo_textbuf tb = {0};
    velo_textbuf_add(&tb, "velo test %s (seed %llu)\n\n",
                     rep->query ? rep->query : "",
                     (unsigned long long)rep->seed);
    size_t i;
    json_t *in;
    if (json_array_size(rep->inputs) > 0) {
        velo_textbuf_add(&tb, "Inputs:\n");
    }
    json_array_foreach(rep->inputs, i, in)
    {
        velo_textbuf_add(
            &tb, "  %-20s %8lld records  from %s\n",
            json_string_value(json_object_get(in, "source")),
            (long long)json_integer_value(json_object_get(in, "records")),
            json_string_value(json_object_get(in, "schema")));
    }
    const char *cur = NULL;
    for (size_t k = 0; k < rep->n; k++) {
        const struct velo_tk_result *r = &rep->r[k];
        if (cur == NULL || strcmp(cur, r->output) != 0) {
            cur = r->output;
            velo_textbuf_add(&tb, "\n%s\n", cur);
        }
        velo_textbuf_add(&tb, "  %s  %-44s observed %s\n",
                         r->passed ? "PASS" : "FAIL", r->name,
                         r->observed ? r->observed : "-");
        if (!r->passed && r->message != NULL) {
            velo_textbuf_add(&tb, "        %s\n", r->message);
        }
        size_t e;
        json_t *ev;
        json_array_foreach(r->evidence, e, ev)
        {
            velo_textbuf_add(&tb, "        analysis (%s): %s\n",
                             json_string_value(json_object_get(ev, "rule")),
                             json_string_value(json_object_get(ev, "summary")));
            size_t d;
            json_t *line;
            json_array_foreach(json_object_get(ev, "details"), d, line)
            {
                velo_textbuf_add(&tb, "          - %s\n",
                                 json_string_value(line));
            }
        }
    }
    if (rep->explanation != NULL) {
        velo_textbuf_add(&tb, "\nExplanation:\n%s\n", rep->explanation);
    }
    size_t failed = velo_tk_report_failed(rep);
    velo_textbuf_add(&tb,
                     "\nExecution time: %.3f s   Throughput: %.0f records/s"
                     "   Records: %llu in, %llu out   Peak memory: %.1f "
                     "MiB\n",
                     rep->elapsed_s, rate(rep),
                     (unsigned long long)rep->records_in,
                     (unsigned long long)rep->records_out,
                     (double)rep->peak_rss / (1024.0 * 1024.0));
    velo_textbuf_add(&tb, "Result: %s (%zu passed, %zu failed)\n",
                     failed ? "FAILED" : "PASSED", rep->n - failed, failed);
    return tb.oom ? NULL : tb.p;
}

static json_t *jstr(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

static json_t *report_json(const struct velo_tk_report *rep)
{
    json_t *o = json_object();
    json_object_set_new(o, "query", jstr(rep->query));
    json_object_set_new(o, "seed", json_integer((json_int_t)rep->seed));
    json_object_set_new(o, "inputs",
                        rep->inputs ? json_incref(rep->inputs) : json_array());
    json_t *outs = json_array();
    json_t *cur = NULL;
    const char *curname = NULL;
    for (size_t k = 0; k < rep->n; k++) {
        const struct velo_tk_result *r = &rep->r[k];
        if (curname == NULL || strcmp(curname, r->output) != 0) {
            curname = r->output;
            json_t *out = json_object();
            json_object_set_new(out, "name", json_string(r->output));
            cur = json_array();
            json_object_set_new(out, "assertions", cur);
            json_array_append_new(outs, out);
        }
        json_t *a = json_object();
        json_object_set_new(a, "type", jstr(r->type));
        json_object_set_new(a, "name", jstr(r->name));
        json_object_set_new(a, "passed", json_boolean(r->passed));
        json_object_set_new(a, "observed", jstr(r->observed));
        json_object_set_new(a, "expected", jstr(r->expected));
        json_object_set_new(a, "message", jstr(r->message));
        json_object_set_new(a, "analysis",
                            r->evidence != NULL ? json_incref(r->evidence)
                                                : json_array());
        json_array_append_new(cur, a);
    }
    json_object_set_new(o, "outputs", outs);
    size_t failed = velo_tk_report_failed(rep);
    json_t *st = json_object();
    json_object_set_new(st, "elapsed_s", json_real(rep->elapsed_s));
    json_object_set_new(st, "records_in",
                        json_integer((json_int_t)rep->records_in));
    json_object_set_new(st, "records_out",
                        json_integer((json_int_t)rep->records_out));
    json_object_set_new(st, "records_per_second", json_real(rate(rep)));
    json_object_set_new(st, "peak_rss_bytes",
                        json_integer((json_int_t)rep->peak_rss));
    json_object_set_new(o, "stats", st);
    json_object_set_new(o, "passed",
                        json_integer((json_int_t)(rep->n - failed)));
    json_object_set_new(o, "failed", json_integer((json_int_t)failed));
    json_object_set_new(o, "explanation", jstr(rep->explanation));
    return o;
}

char *velo_tk_report_json(const struct velo_tk_report *rep)
{
    json_t *o = report_json(rep);
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(o);
    return s;
}

static void xml_escaped(struct velo_textbuf *tb, const char *s)
{
    for (; s != NULL && *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        switch (c) {
        case '<':
            velo_textbuf_add(tb, "&lt;");
            break;
        case '>':
            velo_textbuf_add(tb, "&gt;");
            break;
        case '&':
            velo_textbuf_add(tb, "&amp;");
            break;
        case '"':
            velo_textbuf_add(tb, "&quot;");
            break;
        case '\'':
            velo_textbuf_add(tb, "&apos;");
            break;
        default:
            /* XML 1.0 forbids most control characters even escaped. */
            if (c < 0x20 && c != '\n' && c != '\t' && c != '\r') {
                velo_textbuf_add(tb, "?");
            } else {
                velo_textbuf_add(tb, "%c", c);
            }
        }
    }
}

char *velo_tk_report_junit(const struct velo_tk_report *rep)
{
    struct velo_textbuf tb = {0};
    size_t failed = velo_tk_report_failed(rep);
    velo_textbuf_add(&tb, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    velo_textbuf_add(&tb, "<testsuites name=\"");
    xml_escaped(&tb, rep->query);
    velo_textbuf_add(&tb,
                     "\" tests=\"%zu\" failures=\"%zu\" errors=\"0\" "
                     "time=\"%.3f\">\n",
                     rep->n, failed, rep->elapsed_s);
    size_t k = 0;
    while (k < rep->n) {
        const char *out = rep->r[k].output;
        size_t end = k, nf = 0;
        while (end < rep->n && strcmp(rep->r[end].output, out) == 0) {
            nf += !rep->r[end].passed;
            end++;
        }
        velo_textbuf_add(&tb, "  <testsuite name=\"");
        xml_escaped(&tb, out);
        velo_textbuf_add(&tb,
                         "\" tests=\"%zu\" failures=\"%zu\" errors=\"0\" "
                         "skipped=\"0\" time=\"%.3f\">\n",
                         end - k, nf, rep->elapsed_s);
        for (; k < end; k++) {
            const struct velo_tk_result *r = &rep->r[k];
            velo_textbuf_add(&tb, "    <testcase classname=\"");
            xml_escaped(&tb, rep->query);
            velo_textbuf_add(&tb, ".");
            xml_escaped(&tb, out);
            velo_textbuf_add(&tb, "\" name=\"");
            xml_escaped(&tb, r->name);
            velo_textbuf_add(&tb, "\" time=\"0\"");
            if (r->passed) {
                velo_textbuf_add(&tb, "/>\n");
                continue;
            }
            velo_textbuf_add(&tb, ">\n      <failure type=\"");
            xml_escaped(&tb, r->type);
            velo_textbuf_add(&tb, "\" message=\"");
            xml_escaped(&tb, r->message ? r->message : "failed");
            velo_textbuf_add(&tb, "\">observed: ");
            xml_escaped(&tb, r->observed);
            velo_textbuf_add(&tb, "\nexpected: ");
            xml_escaped(&tb, r->expected);
            size_t e;
            json_t *ev;
            json_array_foreach(r->evidence, e, ev)
            {
                velo_textbuf_add(&tb, "\nanalysis (");
                xml_escaped(&tb,
                            json_string_value(json_object_get(ev, "rule")));
                velo_textbuf_add(&tb, "): ");
                xml_escaped(&tb,
                            json_string_value(json_object_get(ev, "summary")));
                size_t d;
                json_t *line;
                json_array_foreach(json_object_get(ev, "details"), d, line)
                {
                    velo_textbuf_add(&tb, "\n  - ");
                    xml_escaped(&tb, json_string_value(line));
                }
            }
            velo_textbuf_add(&tb, "</failure>\n    </testcase>\n");
        }
        velo_textbuf_add(&tb, "  </testsuite>\n");
    }
    velo_textbuf_add(&tb, "</testsuites>\n");
    return tb.oom ? NULL : tb.p;
}
