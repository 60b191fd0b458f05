/*
 * velo-license-keygen [--force] PRIVATE.pem PUBLIC.pem
 *
 * Vendor tool: make the Ed25519 key pair that signs license files. The
 * private key is written with mode 0600 and never replaces an existing
 * one unless --force is given: losing a production signing key would
 * orphan every license issued with it. The public key is what
 * licenses/velo-license.pub holds and what velo-license-keyembed compiles
 * into the server.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#define PROG "velo-license-keygen"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: " PROG " [--force] PRIVATE.pem PUBLIC.pem\n"
            "\n"
            "Generate an Ed25519 key pair for signing Velostream licenses.\n"
            "PRIVATE.pem is written with mode 0600; keep it outside any\n"
            "repository. An existing PRIVATE.pem is never replaced unless\n"
            "--force is given.\n"
            "\n"
            "  --force   replace an existing private key\n"
            "  --help    this text\n");
}

/* Write PEM text to a fresh temporary file next to `path`.
 * @return the temporary path (malloc'd) or NULL. */
static char *write_temp(const char *path, EVP_PKEY *pk, int private_key,
                        mode_t mode)
{
    size_t len = strlen(path) + 16;
    char *tmp = malloc(len);
    if (tmp == NULL) {
        fprintf(stderr, PROG ": out of memory\n");
        return NULL;
    }
    snprintf(tmp, len, "%s.XXXXXX", path);
    int fd = mkstemp(tmp); /* mode 0600 from the start */
    if (fd < 0) {
        fprintf(stderr, PROG ": cannot create a file next to %s: %s\n", path,
                strerror(errno));
        free(tmp);
        return NULL;
    }
    FILE *f = fdopen(fd, "w");
    if (f == NULL) {
        close(fd);
        unlink(tmp);
        free(tmp);
        fprintf(stderr, PROG ": out of memory\n");
        return NULL;
    }
    int ok = private_key
                 ? PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL)
                 : PEM_write_PUBKEY(f, pk);
    ok = ok == 1 && fflush(f) == 0 && fchmod(fileno(f), mode) == 0 &&
         fsync(fileno(f)) == 0;
    if (fclose(f) != 0) {
        ok = 0;
    }
    if (!ok) {
        fprintf(stderr, PROG ": cannot write %s: %s\n", tmp,
                errno != 0 ? strerror(errno) : "PEM encoding failed");
        unlink(tmp);
        free(tmp);
        ERR_clear_error();
        return NULL;
    }
    return tmp;
}

int main(int argc, char **argv)
{
    int force = 0;
    const char *paths[2];
    int npaths = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--force") == 0) {
            force = 1;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, PROG ": unknown option %s\n", argv[i]);
            usage(stderr);
            return 2;
        } else if (npaths < 2) {
            paths[npaths++] = argv[i];
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (npaths != 2) {
        usage(stderr);
        return 2;
    }
    const char *priv = paths[0], *pub = paths[1];
    if (strcmp(priv, pub) == 0) {
        fprintf(stderr, PROG ": the private and public key paths are the "
                        "same\n");
        return 2;
    }
    if (!force && access(priv, F_OK) == 0) {
        fprintf(stderr,
                PROG ": %s already exists; refusing to replace a private "
                     "key (licenses signed with it would no longer match a "
                     "new public key). Use --force to replace it.\n",
                priv);
        return 1;
    }

    EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (pk == NULL) {
        fprintf(stderr, PROG ": Ed25519 key generation failed\n");
        ERR_clear_error();
        return 1;
    }
    int rc = 1;
    char *tmp_priv = write_temp(priv, pk, 1, 0600);
    char *tmp_pub = tmp_priv != NULL ? write_temp(pub, pk, 0, 0644) : NULL;
    if (tmp_pub == NULL) {
        goto done;
    }
    /* link() fails when the name exists: no window where another run's
     * key could be overwritten between the check above and here. */
    if (force ? rename(tmp_priv, priv) != 0 : link(tmp_priv, priv) != 0) {
        fprintf(stderr, PROG ": cannot write %s: %s\n", priv,
                strerror(errno));
        goto done;
    }
    if (rename(tmp_pub, pub) != 0) {
        fprintf(stderr, PROG ": cannot write %s: %s\n", pub, strerror(errno));
        goto done;
    }
    printf("wrote private key %s (mode 0600; keep it secret, outside any "
           "repository)\nwrote public key %s\n",
           priv, pub);
    rc = 0;
done:
    if (tmp_priv != NULL) {
        unlink(tmp_priv); /* after link(), or when something failed */
    }
    if (tmp_pub != NULL) {
        unlink(tmp_pub);
    }
    free(tmp_priv);
    free(tmp_pub);
    EVP_PKEY_free(pk);
    return rc;
}
