/* sign_bundle.c - keys, the DSSE envelope and the Sigstore bundle around it (see qf_sign.h).
 * Byte layout follows model_signing 1.1.1 (_signing/sign_ec_key.py, sign_sigstore_pb.py). */
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qf_fs.h"
#include "qf_sign.h"

#define QF_BUNDLE_MEDIA_TYPE "application/vnd.dev.sigstore.bundle.v0.3+json"
#define QF_PAYLOAD_TYPE "application/vnd.in-toto+json"

struct qf_sign_key {
    EVP_PKEY *pkey;
    const EVP_MD *md;      /* the curve's hash, as model_signing pairs them */
    char hint[QF_SHA256_HEX_LEN + 1]; /* SHA-256 of the public key's PEM */
};

void qf_sign_key_free(qf_sign_key *k)
{
    if (!k) return;
    EVP_PKEY_free(k->pkey);
    free(k);
}

/* Only the curves model_signing's key method accepts; fill the hash and the hint. */
static qf_status qf_key_finish(qf_sign_key *k, const char *path, qf_error *err)
{
    char group[64] = "";
    if (EVP_PKEY_get_base_id(k->pkey) != EVP_PKEY_EC ||
        !EVP_PKEY_get_utf8_string_param(k->pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, NULL))
        return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: not an elliptic-curve key (model-signing's key method takes ECDSA P-256, P-384 or P-521)", path);
    if (!strcmp(group, "prime256v1") || !strcmp(group, "P-256")) k->md = EVP_sha256();
    else if (!strcmp(group, "secp384r1") || !strcmp(group, "P-384")) k->md = EVP_sha384();
    else if (!strcmp(group, "secp521r1") || !strcmp(group, "P-521")) k->md = EVP_sha512();
    else return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: curve %s is not one of P-256, P-384, P-521", path, group);
    BIO *b = BIO_new(BIO_s_mem());
    char *pem = NULL;
    long n = b && PEM_write_bio_PUBKEY(b, k->pkey) ? BIO_get_mem_data(b, &pem) : 0;
    if (n <= 0) {
        BIO_free(b);
        return qf_fail(err, QF_ERR_GENERIC, "%s: cannot encode the public key", path);
    }
    qf_sha256_hex(qf_sha256_bytes(pem, (size_t)n), k->hint);
    BIO_free(b);
    return QF_OK;
}

/* Never prompt for a passphrase on the terminal: an encrypted key is refused instead. */
static int qf_no_passphrase(char *buf, int size, int rw, void *u)
{
    (void)buf, (void)size, (void)rw, (void)u;
    return -1;
}

static qf_status qf_key_read(const char *path, int private, qf_sign_key **out, qf_error *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) return qf_fail(err, QF_ERR_IO, "%s: cannot open the key", path);
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (1 << 20)) {
        close(fd);
        return qf_fail(err, QF_ERR_IO, "%s: not a regular key file", path);
    }
    /* the same open file is checked and read: no window to swap it */
    if (private && (st.st_mode & 077)) {
        close(fd);
        return qf_fail(err, QF_ERR_SECURITY, "%s: private key is readable by group or others (mode %04o); chmod 600 it",
                       path, (unsigned)(st.st_mode & 07777));
    }
    unsigned char *buf = malloc((size_t)st.st_size + 1);
    ssize_t got = buf ? read(fd, buf, (size_t)st.st_size) : -1;
    close(fd);
    if (got != (ssize_t)st.st_size) {
        free(buf);
        return qf_fail(err, QF_ERR_IO, "%s: cannot read the key", path);
    }
    BIO *b = BIO_new_mem_buf(buf, (int)got);
    EVP_PKEY *pk = !b ? NULL
                   : private ? PEM_read_bio_PrivateKey(b, NULL, qf_no_passphrase, NULL)
                             : PEM_read_bio_PUBKEY(b, NULL, qf_no_passphrase, NULL);
    BIO_free(b);
    OPENSSL_cleanse(buf, (size_t)st.st_size); /* key bytes do not outlive the parse */
    free(buf);
    if (!pk)
        return qf_fail(err, QF_ERR_FORMAT, "%s: not a PEM %s key%s", path, private ? "private" : "public",
                       private ? " (or an encrypted one: decrypt it first)" : "");
    qf_sign_key *k = calloc(1, sizeof *k);
    if (!k) {
        EVP_PKEY_free(pk);
        return qf_fail(err, QF_ERR_NOMEM, "out of memory");
    }
    k->pkey = pk;
    qf_status s = qf_key_finish(k, path, err);
    if (s) {
        qf_sign_key_free(k);
        return s;
    }
    *out = k;
    return QF_OK;
}

qf_status qf_sign_key_load_private(const char *path, qf_sign_key **out, qf_error *err)
{
    return qf_key_read(path, 1, out, err);
}

qf_status qf_sign_key_load_public(const char *path, qf_sign_key **out, qf_error *err)
{
    return qf_key_read(path, 0, out, err);
}

unsigned char *qf_sign_pae(const char *payload, size_t len, size_t *n)
{
    char head[128];
    int hl = snprintf(head, sizeof head, "DSSEv1 %zu %s %zu ", strlen(QF_PAYLOAD_TYPE), QF_PAYLOAD_TYPE, len);
    unsigned char *p = malloc((size_t)hl + len + 1);
    if (!p) return NULL;
    memcpy(p, head, (size_t)hl);
    if (len) memcpy(p + hl, payload, len);
    *n = (size_t)hl + len;
    return p;
}

static char *qf_b64(const unsigned char *d, size_t n)
{
    char *o = malloc(4 * ((n + 2) / 3) + 1);
    if (o) EVP_EncodeBlock((unsigned char *)o, d, (int)n);
    return o;
}

/* Strict base64 decode (standard alphabet, padded): NULL when malformed. */
static unsigned char *qf_unb64(const char *s, size_t *n)
{
    size_t l = strlen(s);
    if (l % 4 || l > (64u << 20)) return NULL;
    unsigned char *o = malloc(l / 4 * 3 + 1);
    int r = o ? EVP_DecodeBlock(o, (const unsigned char *)s, (int)l) : -1;
    if (r < 0) {
        free(o);
        return NULL;
    }
    size_t pad = l >= 1 && s[l - 1] == '=' ? (l >= 2 && s[l - 2] == '=' ? 2 : 1) : 0;
    *n = (size_t)r - pad;
    return o;
}

qf_status qf_sign_bundle(qf_sign_key *key, const char *payload, size_t len, json_t **out, qf_error *err)
{
    *out = NULL;
    size_t pn = 0, sn = 0;
    unsigned char *pae = qf_sign_pae(payload, len, &pn), *sig = NULL;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    int ok = pae && c && EVP_DigestSignInit(c, NULL, key->md, NULL, key->pkey) == 1 &&
             EVP_DigestSign(c, NULL, &sn, pae, pn) == 1 && (sig = malloc(sn)) &&
             EVP_DigestSign(c, sig, &sn, pae, pn) == 1;
    EVP_MD_CTX_free(c);
    free(pae);
    char *b64sig = ok ? qf_b64(sig, sn) : NULL, *b64pay = ok ? qf_b64((const unsigned char *)payload, len) : NULL;
    free(sig);
    if (!b64sig || !b64pay) {
        free(b64sig);
        free(b64pay);
        return qf_fail(err, QF_ERR_GENERIC, "signing failed (libcrypto)");
    }
    *out = json_pack("{s:s, s:{s:{s:s}, s:[]}, s:{s:s, s:s, s:[{s:s, s:s}]}}", "mediaType", QF_BUNDLE_MEDIA_TYPE,
                     "verificationMaterial", "publicKey", "hint", key->hint, "tlogEntries", "dsseEnvelope", "payload",
                     b64pay, "payloadType", QF_PAYLOAD_TYPE, "signatures", "sig", b64sig, "keyid", "");
    free(b64sig);
    free(b64pay);
    return *out ? QF_OK : qf_fail(err, QF_ERR_NOMEM, "out of memory");
}

static const char *qf_jget(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

qf_status qf_sign_bundle_open(json_t *bundle, qf_sign_key *pub, const char *sigpath, char **payload, size_t *len,
                              qf_error *err)
{
    *payload = NULL;
    *len = 0;
    json_t *env = json_object_get(bundle, "dsseEnvelope");
    json_t *sigs = json_object_get(env, "signatures");
    const char *media = qf_jget(bundle, "mediaType");
    const char *hint = qf_jget(json_object_get(json_object_get(bundle, "verificationMaterial"), "publicKey"), "hint");
    const char *b64pay = qf_jget(env, "payload"), *ptype = qf_jget(env, "payloadType");
    const char *b64sig = qf_jget(json_array_get(sigs, 0), "sig");
    if (!media || strcmp(media, QF_BUNDLE_MEDIA_TYPE) != 0)
        return qf_fail(err, QF_ERR_BAD_SIGNATURE, "%s: not a Sigstore bundle v0.3 (mediaType)", sigpath);
    if (!b64pay || !b64sig || !ptype)
        return qf_fail(err, QF_ERR_BAD_SIGNATURE, "%s: no DSSE envelope with a payload and a signature", sigpath);
    if (strcmp(ptype, QF_PAYLOAD_TYPE) != 0)
        return qf_fail(err, QF_ERR_BAD_SIGNATURE, "%s: payload type is not %s", sigpath, QF_PAYLOAD_TYPE);
    /* model_signing checks the key's fingerprint first: a mismatch means another key signed */
    if (hint && hint[0] && strcmp(hint, pub->hint) != 0)
        return qf_fail(err, QF_ERR_WRONG_KEY, "%s: signed with a different key (key hint %.16s..., this key %.16s...)",
                       sigpath, hint, pub->hint);
    size_t pl = 0, sl = 0, pn = 0;
    unsigned char *pay = qf_unb64(b64pay, &pl), *sig = qf_unb64(b64sig, &sl);
    unsigned char *pae = pay ? qf_sign_pae((const char *)pay, pl, &pn) : NULL;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    int ok = pay && sig && pae && c && EVP_DigestVerifyInit(c, NULL, pub->md, NULL, pub->pkey) == 1 &&
             EVP_DigestVerify(c, sig, sl, pae, pn) == 1;
    EVP_MD_CTX_free(c);
    free(pae);
    free(sig);
    if (!ok) {
        free(pay);
        return qf_fail(err, QF_ERR_BAD_SIGNATURE, "%s: the signature does not verify with this key (%s)", sigpath,
                       hint && hint[0] ? "the signed statement was altered" : "altered, or signed with another key");
    }
    *payload = (char *)pay;
    *len = pl;
    return QF_OK;
}
