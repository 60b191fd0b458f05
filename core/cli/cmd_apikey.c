/*
 * velo apikey: create, list and revoke API keys in the auth store under
 * server.data_dir. A key is printed once, at creation; the store keeps
 * only the SHA-256 of its secret. A running server sees the change within
 * a second.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include <velo/log.h>

#include "cli/cli.h"
#include "config/config.h"
#include "store/authstore.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: velo apikey <command> [options]\n"
            "\n"
            "Commands:\n"
            "  create --name LABEL [--owner USER] [--role ROLE]... "
            "[--format text|json]\n"
            "                         make a key (default role: viewer); the "
            "key is\n"
            "                         printed once on stdout, store it now\n"
            "  list [--format text|json]\n"
            "                         list keys (never their secrets)\n"
            "  revoke ID              revoke a key; requests using it get 401 "
            "from now on\n"
            "\n"
            "Roles: %s. Use a key as 'Authorization: Bearer KEY' or\n"
            "'X-API-Key: KEY'.\n"
            "\n%s\n"
            "Exit codes: 0 done, 1 failed (e.g. no such key), 2 usage "
            "error.\n",
            velo_auth_role_list(), velo_cli_common_help);
}

struct key_opts {
    struct velo_cli_common common;
    const char *sub;
    const char *name;
    const char *owner;
    const char *id;
    const char *roles[VELO_AUTH_MAX_ROLES];
    size_t n_roles;
    int json;
};

/* "--opt VALUE" or "--opt=VALUE". @return 1 matched, 0 not it, -1 error. */
static int opt_value(const char *opt, int argc, char **argv, int *i,
                     const char **value)
{
    const char *a = argv[*i];
    size_t n = strlen(opt);
    if (strncmp(a, opt, n) != 0 || (a[n] != '\0' && a[n] != '=')) {
        return 0;
    }
    if (a[n] == '=') {
        *value = a + n + 1;
    } else if (*i + 1 < argc) {
        *value = argv[++*i];
    } else {
        *value = NULL;
    }
    if (*value == NULL || (*value)[0] == '\0') {
        fprintf(stderr, "velo apikey: %s needs a value\n", opt);
        return -1;
    }
    return 1;
}

static int parse(struct key_opts *o, int argc, char **argv)
{
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return VELO_EXIT_OK;
        }
        int r = velo_cli_common_opt(&o->common, argc, argv, &i);
        if (r < 0) {
            return VELO_EXIT_USAGE;
        }
        if (r > 0) {
            continue;
        }
        if ((r = opt_value("--name", argc, argv, &i, &v)) != 0) {
            if (r < 0) {
                return VELO_EXIT_USAGE;
            }
            o->name = v;
        } else if ((r = opt_value("--owner", argc, argv, &i, &v)) != 0) {
            if (r < 0) {
                return VELO_EXIT_USAGE;
            }
            o->owner = v;
        } else if ((r = opt_value("--role", argc, argv, &i, &v)) != 0) {
            if (r < 0) {
                return VELO_EXIT_USAGE;
            }
            if (o->n_roles == VELO_AUTH_MAX_ROLES) {
                fprintf(stderr, "velo apikey: too many --role options\n");
                return VELO_EXIT_USAGE;
            }
            o->roles[o->n_roles++] = v;
        } else if ((r = opt_value("--format", argc, argv, &i, &v)) != 0) {
            if (r < 0 || (strcmp(v, "json") != 0 && strcmp(v, "text") != 0)) {
                fprintf(stderr, "velo apikey: --format takes text or json\n");
                return VELO_EXIT_USAGE;
            }
            o->json = strcmp(v, "json") == 0;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr,
                    "velo apikey: unknown option '%s' (see velo "
                    "apikey --help)\n",
                    a);
            return VELO_EXIT_USAGE;
        } else if (o->id == NULL && strcmp(o->sub, "revoke") == 0) {
            o->id = a;
        } else {
            fprintf(stderr, "velo apikey %s: unexpected argument '%s'\n",
                    o->sub, a);
            return VELO_EXIT_USAGE;
        }
    }
    int create = strcmp(o->sub, "create") == 0;
    if (create && o->name == NULL) {
        fprintf(stderr, "velo apikey create: --name LABEL is required\n");
        return VELO_EXIT_USAGE;
    }
    if (!create && (o->name != NULL || o->owner != NULL || o->n_roles > 0)) {
        fprintf(stderr,
                "velo apikey %s: --name, --owner and --role only "
                "apply to create\n",
                o->sub);
        return VELO_EXIT_USAGE;
    }
    if (strcmp(o->sub, "revoke") == 0 && o->id == NULL) {
        fprintf(stderr, "velo apikey revoke: ID is required (see velo apikey "
                        "list)\n");
        return VELO_EXIT_USAGE;
    }
    if (o->json && strcmp(o->sub, "revoke") == 0) {
        fprintf(stderr, "velo apikey revoke: --format does not apply\n");
        return VELO_EXIT_USAGE;
    }
    return -1;
}

static json_t *roles_array(const char *roles)
{
    json_t *arr = json_array();
    char buf[VELO_PRINCIPAL_ROLES_MAX];
    snprintf(buf, sizeof(buf), "%s", roles);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); arr != NULL && t != NULL;
         t = strtok_r(NULL, ",", &save)) {
        json_array_append_new(arr, json_string(t));
    }
    return arr;
}

static json_t *key_json(const struct velo_auth_apikey *k)
{
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:o, s:s, s:b}", "id", k->id, "name",
                  k->name, "owner", k->owner, "roles", roles_array(k->roles),
                  "created", k->created, "revoked", k->revoked);
    if (o != NULL && k->revoked) {
        json_object_set_new(o, "revoked_at", json_string(k->revoked_at));
    }
    return o;
}

static int print_json(json_t *v)
{
    char *text = v != NULL ? json_dumps(v, JSON_INDENT(2)) : NULL;
    json_decref(v);
    if (text == NULL) {
        fprintf(stderr, "velo apikey: out of memory\n");
        return VELO_EXIT_FAILURE;
    }
    printf("%s\n", text);
    free(text);
    return VELO_EXIT_OK;
}

static int cmd_create(struct velo_authstore *s, const void *arg)
{
    const struct key_opts *o = arg;
    char roles[VELO_PRINCIPAL_ROLES_MAX], err[512];
    const char *def[] = {"viewer"};
    if (velo_auth_join_roles(o->n_roles > 0 ? o->roles : def,
                             o->n_roles > 0 ? o->n_roles : 1, roles,
                             sizeof(roles), err, sizeof(err)) != VELO_OK) {
        fprintf(stderr, "velo apikey create: %s\n", err);
        return VELO_EXIT_FAILURE;
    }
    if (o->owner != NULL && velo_authstore_user_find(s, o->owner) == NULL) {
        fprintf(stderr,
                "velo apikey create: no user %s to own the key "
                "(hint: velo user list)\n",
                o->owner);
        return VELO_EXIT_FAILURE;
    }
    char key[VELO_APIKEY_TEXT_LEN + 1];
    struct velo_auth_apikey k;
    if (velo_authstore_apikey_create(s, o->name, o->owner, roles, key,
                                     sizeof(key), &k, err,
                                     sizeof(err)) != VELO_OK) {
        fprintf(stderr, "velo apikey create: %s\n", err);
        return VELO_EXIT_FAILURE;
    }
    int rc = VELO_EXIT_OK;
    if (o->json) {
        json_t *j = key_json(&k);
        if (j != NULL) {
            json_object_set_new(j, "key", json_string(key));
        }
        rc = print_json(j);
    } else {
        /* The key alone on stdout, so KEY=$(velo apikey create ...) works;
         * the rest is for the person at the terminal. */
        printf("%s\n", key);
        fprintf(stderr,
                "Created API key %s (name %s, roles %s%s%s). It is "
                "shown only this once: store it now.\n",
                k.id, k.name, k.roles, k.owner[0] != '\0' ? ", owner " : "",
                k.owner);
    }
    OPENSSL_cleanse(key, sizeof(key));
    return rc;
}

static int cmd_list(struct velo_authstore *s, const void *arg)
{
    const struct key_opts *o = arg;
    size_t n = velo_authstore_apikey_count(s);
    if (o->json) {
        json_t *arr = json_array();
        for (size_t i = 0; arr != NULL && i < n; i++) {
            json_array_append_new(arr,
                                  key_json(velo_authstore_apikey_at(s, i)));
        }
        return print_json(arr);
    }
    if (n == 0) {
        printf("No API keys. Create one with: velo apikey create --name "
               "LABEL\n");
        return VELO_EXIT_OK;
    }
    int wn = 4, wo = 5, wr = 5;
    for (size_t i = 0; i < n; i++) {
        const struct velo_auth_apikey *k = velo_authstore_apikey_at(s, i);
        wn = (int)strlen(k->name) > wn ? (int)strlen(k->name) : wn;
        wo = (int)strlen(k->owner) > wo ? (int)strlen(k->owner) : wo;
        wr = (int)strlen(k->roles) > wr ? (int)strlen(k->roles) : wr;
    }
    printf("%-12s  %-*s  %-*s  %-*s  %-20s  %s\n", "ID", wn, "NAME", wo,
           "OWNER", wr, "ROLES", "CREATED", "STATUS");
    for (size_t i = 0; i < n; i++) {
        const struct velo_auth_apikey *k = velo_authstore_apikey_at(s, i);
        printf("%-12s  %-*s  %-*s  %-*s  %-20s  %s%s\n", k->id, wn, k->name, wo,
               k->owner[0] != '\0' ? k->owner : "-", wr, k->roles, k->created,
               k->revoked ? "revoked " : "active",
               k->revoked ? k->revoked_at : "");
    }
    return VELO_EXIT_OK;
}

static int cmd_revoke(struct velo_authstore *s, const void *arg)
{
    const struct key_opts *o = arg;
    char err[512];
    if (velo_authstore_apikey_revoke(s, o->id, err, sizeof(err)) != VELO_OK) {
        fprintf(stderr, "velo apikey revoke: %s\n", err);
        return VELO_EXIT_FAILURE;
    }
    printf("Revoked API key %s\n", o->id);
    return VELO_EXIT_OK;
}

int velo_cmd_apikey(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return VELO_EXIT_USAGE;
    }
    struct key_opts o;
    memset(&o, 0, sizeof(o));
    o.sub = argv[1];
    if (strcmp(o.sub, "--help") == 0 || strcmp(o.sub, "-h") == 0 ||
        strcmp(o.sub, "help") == 0) {
        usage(stdout);
        return VELO_EXIT_OK;
    }
    int (*run)(struct velo_authstore *, const void *) = NULL;
    if (strcmp(o.sub, "create") == 0) {
        run = cmd_create;
    } else if (strcmp(o.sub, "list") == 0) {
        run = cmd_list;
    } else if (strcmp(o.sub, "revoke") == 0) {
        run = cmd_revoke;
    } else {
        fprintf(stderr,
                "velo apikey: unknown command '%s' (create, list, "
                "revoke)\n",
                o.sub);
        return VELO_EXIT_USAGE;
    }
    int rc = parse(&o, argc, argv);
    if (rc >= 0) {
        return rc;
    }
    return velo_cli_with_authstore(&o.common, "apikey", run, &o);
}
