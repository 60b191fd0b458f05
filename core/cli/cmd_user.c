/*
 * velo user: manage the users BasicAuth accepts (add, passwd, list,
 * delete) in the auth store under server.data_dir. A running server picks
 * the changes up at its next authentication; no restart.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include <velo/log.h>

#include "cli/cli.h"
#include "config/config.h"
#include "store/authstore.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: velo user <command> [options]\n"
            "\n"
            "Commands:\n"
            "  add NAME [--role ROLE]... [--password-stdin]\n"
            "                         create a user (default role: viewer)\n"
            "  passwd NAME [--password-stdin]\n"
            "                         set a new password\n"
            "  list [--format text|json]\n"
            "                         list users and their roles\n"
            "  delete NAME            delete a user and revoke the API keys "
            "it owns\n"
            "\n"
            "Roles: %s (admin may do everything, viewer may only read).\n"
            "Names: 1 to %d of A-Z a-z 0-9 _ . @ -\n"
            "Passwords: %d to %d characters. On a terminal the password is "
            "asked\ntwice without echo; with --password-stdin, or when stdin "
            "is not a\nterminal, one line is read from stdin.\n"
            "\n%s\n"
            "Exit codes: 0 done, 1 failed (e.g. the user exists), 2 usage "
            "error.\n",
            velo_auth_role_list(), VELO_AUTH_NAME_MAX, VELO_AUTH_PASSWORD_MIN,
            VELO_AUTH_PASSWORD_MAX, velo_cli_common_help);
}

static struct termios saved_tty;
static volatile sig_atomic_t tty_changed;

static void restore_tty(int sig)
{
    if (tty_changed) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

/* One line from stdin without its end of line. @return VELO_OK/VELO_ERR. */
static int read_line(char *out, size_t outlen, const char *what)
{
    if (fgets(out, (int)outlen, stdin) == NULL) {
        fprintf(stderr, "velo user: no %s on stdin\n", what);
        return VELO_ERR;
    }
    size_t n = strlen(out);
    if (n > 0 && out[n - 1] != '\n' && !feof(stdin)) {
        fprintf(stderr, "velo user: the %s is longer than %d characters\n",
                what, VELO_AUTH_PASSWORD_MAX);
        return VELO_ERR;
    }
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r')) {
        out[--n] = '\0';
    }
    return VELO_OK;
}

static int prompt_hidden(const char *prompt, char *out, size_t outlen)
{
    struct termios t;
    if (tcgetattr(STDIN_FILENO, &saved_tty) != 0) {
        return read_line(out, outlen, "password");
    }
    t = saved_tty;
    t.c_lflag &= ~(tcflag_t)ECHO;
    signal(SIGINT, restore_tty);
    signal(SIGTERM, restore_tty);
    tty_changed = 1;
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &t);
    fprintf(stderr, "%s", prompt);
    fflush(stderr);
    int rc = read_line(out, outlen, "password");
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
    tty_changed = 0;
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    fprintf(stderr, "\n");
    return rc;
}

static int check_password(const char *pw)
{
    size_t n = strlen(pw);
    if (n < VELO_AUTH_PASSWORD_MIN || n > VELO_AUTH_PASSWORD_MAX) {
        fprintf(stderr,
                "velo user: the password must be %d to %d "
                "characters (got %zu)\n",
                VELO_AUTH_PASSWORD_MIN, VELO_AUTH_PASSWORD_MAX, n);
        return VELO_ERR;
    }
    return VELO_OK;
}

static int get_password(const char *user, int from_stdin, char *out,
                        size_t outlen)
{
    if (from_stdin || !isatty(STDIN_FILENO)) {
        if (read_line(out, outlen, "password") != VELO_OK) {
            return VELO_ERR;
        }
        return check_password(out);
    }
    char prompt[128], again[VELO_AUTH_PASSWORD_MAX + 2];
    snprintf(prompt, sizeof(prompt), "Password for %s: ", user);
    if (prompt_hidden(prompt, out, outlen) != VELO_OK ||
        check_password(out) != VELO_OK ||
        prompt_hidden("Repeat the password: ", again, sizeof(again)) !=
            VELO_OK) {
        return VELO_ERR;
    }
    int same = strcmp(out, again) == 0;
    OPENSSL_cleanse(again, sizeof(again));
    if (!same) {
        fprintf(stderr, "velo user: the passwords do not match\n");
        return VELO_ERR;
    }
    return VELO_OK;
}

struct user_opts {
    struct velo_cli_common common;
    const char *sub;
    const char *name;
    const char *roles[VELO_AUTH_MAX_ROLES];
    size_t n_roles;
    int password_stdin;
    int json;
};

/* @return -1 to go on, else an exit code. */
static int parse(struct user_opts *o, int argc, char **argv)
{
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
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
        if (strcmp(a, "--role") == 0 || strncmp(a, "--role=", 7) == 0) {
            const char *v = a[6] == '=' ? a + 7 : NULL;
            if (v == NULL && i + 1 < argc) {
                v = argv[++i];
            }
            if (v == NULL || v[0] == '\0') {
                fprintf(stderr, "velo user: --role needs a value (%s)\n",
                        velo_auth_role_list());
                return VELO_EXIT_USAGE;
            }
            if (o->n_roles == VELO_AUTH_MAX_ROLES) {
                fprintf(stderr, "velo user: too many --role options\n");
                return VELO_EXIT_USAGE;
            }
            o->roles[o->n_roles++] = v;
        } else if (strcmp(a, "--password-stdin") == 0) {
            o->password_stdin = 1;
        } else if (strcmp(a, "--format") == 0 ||
                   strncmp(a, "--format=", 9) == 0) {
            const char *v = a[8] == '=' ? a + 9 : NULL;
            if (v == NULL && i + 1 < argc) {
                v = argv[++i];
            }
            if (v == NULL ||
                (strcmp(v, "json") != 0 && strcmp(v, "text") != 0)) {
                fprintf(stderr, "velo user: --format takes text or json\n");
                return VELO_EXIT_USAGE;
            }
            o->json = strcmp(v, "json") == 0;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr,
                    "velo user: unknown option '%s' (see velo user "
                    "--help)\n",
                    a);
            return VELO_EXIT_USAGE;
        } else if (o->name == NULL) {
            o->name = a;
        } else {
            fprintf(stderr, "velo user: unexpected argument '%s'\n", a);
            return VELO_EXIT_USAGE;
        }
    }
    int needs_name = strcmp(o->sub, "list") != 0;
    if (needs_name && o->name == NULL) {
        fprintf(stderr,
                "velo user %s: NAME is required (see velo user "
                "--help)\n",
                o->sub);
        return VELO_EXIT_USAGE;
    }
    if (!needs_name && o->name != NULL) {
        fprintf(stderr, "velo user list: unexpected argument '%s'\n", o->name);
        return VELO_EXIT_USAGE;
    }
    if (o->n_roles > 0 && strcmp(o->sub, "add") != 0) {
        fprintf(stderr, "velo user %s: --role only applies to add\n", o->sub);
        return VELO_EXIT_USAGE;
    }
    if (o->password_stdin && strcmp(o->sub, "add") != 0 &&
        strcmp(o->sub, "passwd") != 0) {
        fprintf(stderr,
                "velo user %s: --password-stdin only applies to add "
                "and passwd\n",
                o->sub);
        return VELO_EXIT_USAGE;
    }
    if (o->json && strcmp(o->sub, "list") != 0) {
        fprintf(stderr, "velo user %s: --format only applies to list\n",
                o->sub);
        return VELO_EXIT_USAGE;
    }
    return -1;
}

static int cmd_add(struct velo_authstore *s, const void *arg)
{
    const struct user_opts *o = arg;
    char roles[VELO_PRINCIPAL_ROLES_MAX], err[512];
    const char *def[] = {"viewer"};
    if (!velo_auth_valid_username(o->name)) {
        fprintf(stderr,
                "velo user add: invalid user name '%s' (use 1 to %d "
                "of A-Z a-z 0-9 _ . @ -)\n",
                o->name, VELO_AUTH_NAME_MAX);
        return VELO_EXIT_FAILURE;
    }
    if (velo_auth_join_roles(o->n_roles > 0 ? o->roles : def,
                             o->n_roles > 0 ? o->n_roles : 1, roles,
                             sizeof(roles), err, sizeof(err)) != VELO_OK) {
        fprintf(stderr, "velo user add: %s\n", err);
        return VELO_EXIT_FAILURE;
    }
    if (velo_authstore_user_find(s, o->name) != NULL) {
        fprintf(stderr,
                "velo user add: user %s already exists (hint: velo "
                "user passwd %s changes the password)\n",
                o->name, o->name);
        return VELO_EXIT_FAILURE;
    }
    char pw[VELO_AUTH_PASSWORD_MAX + 2], hash[VELO_AUTH_HASH_TEXT_MAX];
    if (get_password(o->name, o->password_stdin, pw, sizeof(pw)) != VELO_OK) {
        OPENSSL_cleanse(pw, sizeof(pw));
        return VELO_EXIT_FAILURE;
    }
    /* Hash before taking the store's lock: hashing is slow by design. */
    int hrc = velo_auth_hash_password(pw, velo_authstore_iterations(s), hash,
                                      sizeof(hash));
    OPENSSL_cleanse(pw, sizeof(pw));
    if (hrc != VELO_OK) {
        fprintf(stderr, "velo user add: cannot hash the password: %s\n",
                strerror(errno));
        return VELO_EXIT_FAILURE;
    }
    if (velo_authstore_user_add(s, o->name, hash, roles, err, sizeof(err)) !=
        VELO_OK) {
        fprintf(stderr, "velo user add: %s\n", err);
        return VELO_EXIT_FAILURE;
    }
    printf("Created user %s (roles: %s)\n", o->name, roles);
    return VELO_EXIT_OK;
}

static int cmd_passwd(struct velo_authstore *s, const void *arg)
{
    const struct user_opts *o = arg;
    char err[512];
    if (velo_authstore_user_find(s, o->name) == NULL) {
        fprintf(stderr,
                "velo user passwd: no user %s (hint: velo user "
                "list)\n",
                o->name);
        return VELO_EXIT_FAILURE;
    }
    char pw[VELO_AUTH_PASSWORD_MAX + 2], hash[VELO_AUTH_HASH_TEXT_MAX];
    if (get_password(o->name, o->password_stdin, pw, sizeof(pw)) != VELO_OK) {
        OPENSSL_cleanse(pw, sizeof(pw));
        return VELO_EXIT_FAILURE;
    }
    int hrc = velo_auth_hash_password(pw, velo_authstore_iterations(s), hash,
                                      sizeof(hash));
    OPENSSL_cleanse(pw, sizeof(pw));
    if (hrc != VELO_OK) {
        fprintf(stderr, "velo user passwd: cannot hash the password: %s\n",
                strerror(errno));
        return VELO_EXIT_FAILURE;
    }
    if (velo_authstore_user_set_hash(s, o->name, hash, err, sizeof(err)) !=
        VELO_OK) {
        fprintf(stderr, "velo user passwd: %s\n", err);
        return VELO_EXIT_FAILURE;
    }
    printf("Password changed for %s\n", o->name);
    return VELO_EXIT_OK;
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

static int cmd_list(struct velo_authstore *s, const void *arg)
{
    const struct user_opts *o = arg;
    size_t n = velo_authstore_user_count(s);
    if (o->json) {
        json_t *arr = json_array();
        for (size_t i = 0; arr != NULL && i < n; i++) {
            const struct velo_auth_user *u = velo_authstore_user_at(s, i);
            json_array_append_new(
                arr, json_pack("{s:s, s:o, s:s}", "name", u->name, "roles",
                               roles_array(u->roles), "created", u->created));
        }
        char *text = arr != NULL ? json_dumps(arr, JSON_INDENT(2)) : NULL;
        json_decref(arr);
        if (text == NULL) {
            fprintf(stderr, "velo user list: out of memory\n");
            return VELO_EXIT_FAILURE;
        }
        printf("%s\n", text);
        free(text);
        return VELO_EXIT_OK;
    }
    if (n == 0) {
        printf("No users. Create one with: velo user add NAME --role "
               "admin\n");
        return VELO_EXIT_OK;
    }
    int wn = 4, wr = 5;
    for (size_t i = 0; i < n; i++) {
        const struct velo_auth_user *u = velo_authstore_user_at(s, i);
        wn = (int)strlen(u->name) > wn ? (int)strlen(u->name) : wn;
        wr = (int)strlen(u->roles) > wr ? (int)strlen(u->roles) : wr;
    }
    printf("%-*s  %-*s  %s\n", wn, "NAME", wr, "ROLES", "CREATED");
    for (size_t i = 0; i < n; i++) {
        const struct velo_auth_user *u = velo_authstore_user_at(s, i);
        printf("%-*s  %-*s  %s\n", wn, u->name, wr, u->roles,
               u->created[0] != '\0' ? u->created : "-");
    }
    return VELO_EXIT_OK;
}

static int cmd_delete(struct velo_authstore *s, const void *arg)
{
    const struct user_opts *o = arg;
    char err[512];
    size_t revoked = 0;
    if (velo_authstore_user_delete(s, o->name, &revoked, err, sizeof(err)) !=
        VELO_OK) {
        fprintf(stderr, "velo user delete: %s\n", err);
        return VELO_EXIT_FAILURE;
    }
    printf("Deleted user %s", o->name);
    if (revoked > 0) {
        printf(" and revoked %zu API key(s) it owned", revoked);
    }
    printf("\n");
    return VELO_EXIT_OK;
}

int velo_cmd_user(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return VELO_EXIT_USAGE;
    }
    struct user_opts o;
    memset(&o, 0, sizeof(o));
    o.sub = argv[1];
    if (strcmp(o.sub, "--help") == 0 || strcmp(o.sub, "-h") == 0 ||
        strcmp(o.sub, "help") == 0) {
        usage(stdout);
        return VELO_EXIT_OK;
    }
    int (*run)(struct velo_authstore *, const void *) = NULL;
    if (strcmp(o.sub, "add") == 0) {
        run = cmd_add;
    } else if (strcmp(o.sub, "passwd") == 0) {
        run = cmd_passwd;
    } else if (strcmp(o.sub, "list") == 0) {
        run = cmd_list;
    } else if (strcmp(o.sub, "delete") == 0) {
        run = cmd_delete;
    } else {
        fprintf(stderr,
                "velo user: unknown command '%s' (add, passwd, list, "
                "delete)\n",
                o.sub);
        return VELO_EXIT_USAGE;
    }
    int rc = parse(&o, argc, argv);
    if (rc >= 0) {
        return rc;
    }
    return velo_cli_with_authstore(&o.common, "user", run, &o);
}
