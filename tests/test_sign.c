/* test_sign.c - SHA-256 (common/qf_sha256.h) and OpenSSF model-signing signatures
 * (formats/qf_sign.h): the statement and envelope byte for byte, and every tampering of
 * them refused with the right status.
 *
 * Pinned from independent sources: SHA-256 of "" and "abc" (FIPS 180-2 examples); the
 * subject digest of two files "hello\n" and "world\n" named a.txt and b.txt is what
 * `model_signing sign key` 1.1.1 wrote for that folder (d5bc6ace...); tests/data/signing/
 * holds a folder signed by model_signing 1.1.1 with its public key (the private key was
 * thrown away), which qforge must verify.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qf_test_tmpdir.h"
#include "qf_sign.h"
#include "qf_st_writer.h"

#define QF_TEST_DATA "tests/data" /* tests run from the repository root */

static void hex_is(qf_sha256 h, const char *want)
{
    char hex[QF_SHA256_HEX_LEN + 1];
    qf_sha256_hex(h, hex);
    assert_string_equal(hex, want);
}

static void test_sha256_vectors(void **state)
{
    (void)state;
    hex_is(qf_sha256_bytes("", 0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    hex_is(qf_sha256_bytes("abc", 3), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    qf_sha256_ctx *c = qf_sha256_new();
    qf_sha256_update(c, "a", 1);
    qf_sha256_update(c, "", 0);
    qf_sha256_update(c, "bc", 2);
    hex_is(qf_sha256_final(c), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    qf_sha256 p;
    assert_int_equal(qf_sha256_parse_hex("BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD", &p), 0);
    assert_true(qf_sha256_equal(p, qf_sha256_bytes("abc", 3)));
    assert_int_equal(qf_sha256_parse_hex("ba78", &p), -1);
    assert_int_equal(qf_sha256_parse_hex("zz7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", &p), -1);
}

/* The writer's SHA-256 (computed while writing) equals the file's, read back. */
static void test_writer_sha256(void **state)
{
    (void)state;
    char *path = qf_path_join(qf_test_tmp, "w.safetensors");
    qf_st_entry e[2] = {{"a", QF_DTYPE_BF16, 2, {3, 5}}, {"b", QF_DTYPE_F32, 1, {7}}};
    qf_st_writer *w;
    qf_error err;
    assert_int_equal(qf_st_writer_open(path, e, 2, &w, &err), QF_OK);
    uint8_t buf[64];
    for (int i = 0; i < 64; i++) buf[i] = (uint8_t)(i * 7);
    assert_int_equal(qf_st_writer_write(w, 0, buf, 30, &err), QF_OK);
    assert_int_equal(qf_st_writer_write(w, 1, buf, 10, &err), QF_OK);
    assert_int_equal(qf_st_writer_write(w, 1, buf + 10, 18, &err), QF_OK);
    qf_sha256 ws, rs;
    uint64_t size = 0, rsize = 0;
    assert_int_equal(qf_st_writer_close(w, &size, NULL, &ws, NULL, &err), QF_OK);
    assert_int_equal(qf_sha256_file(path, &rs, &rsize, &err), QF_OK);
    assert_true(qf_sha256_equal(ws, rs));
    assert_int_equal(size, rsize);
    free(path);
}

static void test_pae(void **state)
{
    (void)state;
    size_t n = 0;
    unsigned char *p = qf_sign_pae("hello", 5, &n);
    const char *want = "DSSEv1 28 application/vnd.in-toto+json 5 hello";
    assert_int_equal(n, strlen(want));
    assert_memory_equal(p, want, n);
    free(p);
}

static qf_file_list two_files(void)
{
    qf_file_list l = {2, calloc(2, sizeof(qf_file_digest))};
    l.f[0].name = strdup("a.txt");
    l.f[0].sha256 = qf_sha256_bytes("world\n", 6); /* as in model_signing's run: a.txt held "world\n" */
    l.f[1].name = strdup("b.txt");
    l.f[1].sha256 = qf_sha256_bytes("hello\n", 6);
    return l;
}

static char *statement_text(const qf_file_list *l)
{
    json_t *st = qf_sign_statement("m", l, qf_sign_default_ignore, qf_sign_n_default_ignore);
    assert_non_null(st);
    char *t = json_dumps(st, JSON_INDENT(2));
    json_decref(st);
    return t;
}

static void test_statement(void **state)
{
    (void)state;
    qf_file_list l = two_files();
    char *t = statement_text(&l);
    json_t *st = json_loads(t, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(st, "_type")), "https://in-toto.io/Statement/v1");
    assert_string_equal(json_string_value(json_object_get(st, "predicateType")), "https://model_signing/signature/v1.0");
    json_t *subj = json_array_get(json_object_get(st, "subject"), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(subj, "digest"), "sha256")),
                        "d5bc6aced19287d552f0052d8ed5a90f0e4e09bfcf14d6c0d876e6e98449b2a4");
    json_t *ser = json_object_get(json_object_get(st, "predicate"), "serialization");
    assert_string_equal(json_string_value(json_object_get(ser, "method")), "files");
    assert_string_equal(json_string_value(json_object_get(ser, "hash_type")), "sha256");
    assert_true(json_is_false(json_object_get(ser, "allow_symlinks")));
    json_decref(st);

    qf_file_list back;
    json_t *ign;
    qf_error err;
    assert_int_equal(qf_sign_statement_parse(t, strlen(t), "sig", &back, &ign, &err), QF_OK);
    assert_int_equal(back.n, 2);
    assert_string_equal(back.f[1].name, "b.txt");
    assert_true(qf_sha256_equal(back.f[1].sha256, l.f[1].sha256));
    assert_int_equal(json_array_size(ign), (size_t)qf_sign_n_default_ignore);
    json_decref(ign);
    qf_file_list_free(&back);
    free(t);
    qf_file_list_free(&l);
}

/* Edit the statement text (first occurrence of from -> to) and expect parse to refuse it. */
static void refused(const char *text, const char *from, const char *to, const char *why)
{
    const char *at = strstr(text, from);
    assert_non_null(at);
    size_t pre = (size_t)(at - text), tl = strlen(text) - strlen(from) + strlen(to);
    char *m = malloc(tl + 1);
    memcpy(m, text, pre);
    strcpy(m + pre, to);
    strcat(m, at + strlen(from));
    qf_file_list back;
    json_t *ign;
    qf_error err;
    assert_int_equal(qf_sign_statement_parse(m, strlen(m), "X/model.sig", &back, &ign, &err), QF_ERR_BAD_SIGNATURE);
    assert_non_null(strstr(err.msg, "X/model.sig"));
    if (why) assert_non_null(strstr(err.msg, why));
    free(m);
}

static void test_statement_tampering(void **state)
{
    (void)state;
    qf_file_list l = two_files();
    char *t = statement_text(&l);
    char hex[QF_SHA256_HEX_LEN + 1];
    qf_sha256_hex(l.f[0].sha256, hex);
    char edited[QF_SHA256_HEX_LEN + 1];
    strcpy(edited, hex);
    edited[10] = edited[10] == '0' ? '1' : '0';
    refused(t, hex, edited, "subject digest"); /* a resource's digest changed without the subject */
    refused(t, "\"a.txt\"", "\"b.txt\"", "twice");
    refused(t, "\"a.txt\"", "\"../a.txt\"", "malformed");
    refused(t, "\"a.txt\"", "\"/etc/passwd\"", "malformed");
    refused(t, "signature/v1.0", "signature/v9.9", "predicate");
    refused(t, "Statement/v1", "Statement/v0", "in-toto");
    refused(t, "\"files\"", "\"shards\"", "serialization");
    refused(t, "{", "[", NULL);
    free(t);
    qf_file_list_free(&l);
}

static char *write_key(const char *name, EVP_PKEY *k, int private, mode_t mode)
{
    char *path = qf_path_join(qf_test_tmp, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(private ? PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) : PEM_write_PUBKEY(f, k), 1);
    fclose(f);
    chmod(path, mode);
    return path;
}

static json_t *sign_text(qf_sign_key *key, const char *payload)
{
    json_t *b = NULL;
    qf_error err;
    assert_int_equal(qf_sign_bundle(key, payload, strlen(payload), &b, &err), QF_OK);
    return b;
}

static void test_bundle(void **state)
{
    (void)state;
    EVP_PKEY *k1 = EVP_EC_gen("P-256"), *k2 = EVP_EC_gen("P-384");
    assert_non_null(k1);
    assert_non_null(k2);
    char *priv1 = write_key("k1.pem", k1, 1, 0600), *pub1 = write_key("k1.pub", k1, 0, 0644);
    char *priv2 = write_key("k2.pem", k2, 1, 0600), *pub2 = write_key("k2.pub", k2, 0, 0644);
    char *loose = write_key("loose.pem", k1, 1, 0604);
    qf_sign_key *s1, *v1, *s2, *v2, *x;
    qf_error err;
    assert_int_equal(qf_sign_key_load_private(priv1, &s1, &err), QF_OK);
    assert_int_equal(qf_sign_key_load_public(pub1, &v1, &err), QF_OK);
    assert_int_equal(qf_sign_key_load_private(priv2, &s2, &err), QF_OK);
    assert_int_equal(qf_sign_key_load_public(pub2, &v2, &err), QF_OK);
    assert_int_equal(qf_sign_key_load_private(loose, &x, &err), QF_ERR_SECURITY);
    assert_non_null(strstr(err.msg, "loose.pem"));
    assert_int_equal(qf_sign_key_load_private(pub1, &x, &err), QF_ERR_SECURITY); /* mode checked before parsing */
    char *pub600 = write_key("k1pub.pem", k1, 0, 0600);
    assert_int_equal(qf_sign_key_load_private(pub600, &x, &err), QF_ERR_FORMAT);
    free(pub600);

    const char *payload = "{\"_type\": \"x\"}";
    json_t *b = sign_text(s1, payload);
    assert_string_equal(json_string_value(json_object_get(b, "mediaType")),
                        "application/vnd.dev.sigstore.bundle.v0.3+json");
    char *out;
    size_t n;
    assert_int_equal(qf_sign_bundle_open(b, v1, "S", &out, &n, &err), QF_OK);
    assert_int_equal(n, strlen(payload));
    assert_memory_equal(out, payload, n);
    free(out);
    assert_int_equal(qf_sign_bundle_open(b, v2, "S", &out, &n, &err), QF_ERR_WRONG_KEY);
    /* the hint removed (older bundles have none): another key is then a bad signature */
    json_t *vm = json_object_get(json_object_get(b, "verificationMaterial"), "publicKey");
    json_t *hint = json_incref(json_object_get(vm, "hint"));
    json_object_del(vm, "hint");
    assert_int_equal(qf_sign_bundle_open(b, v2, "S", &out, &n, &err), QF_ERR_BAD_SIGNATURE);
    assert_int_equal(qf_sign_bundle_open(b, v1, "S", &out, &n, &err), QF_OK);
    free(out);
    json_object_set_new(vm, "hint", hint);
    /* another payload under the same signature */
    json_t *env = json_object_get(b, "dsseEnvelope");
    json_t *b2 = sign_text(s1, "{\"_type\": \"y\"}");
    json_object_set(env, "payload", json_object_get(json_object_get(b2, "dsseEnvelope"), "payload"));
    assert_int_equal(qf_sign_bundle_open(b, v1, "S", &out, &n, &err), QF_ERR_BAD_SIGNATURE);
    assert_non_null(strstr(err.msg, "S:"));
    json_decref(b2);
    json_object_set_new(env, "payload", json_string("not base64!"));
    assert_int_equal(qf_sign_bundle_open(b, v1, "S", &out, &n, &err), QF_ERR_BAD_SIGNATURE);
    json_object_set_new(b, "mediaType", json_string("application/vnd.dev.sigstore.bundle.v0.1+json"));
    assert_int_equal(qf_sign_bundle_open(b, v1, "S", &out, &n, &err), QF_ERR_BAD_SIGNATURE);
    json_decref(b);
    /* P-384 signs with SHA-384, and verifies */
    b = sign_text(s2, payload);
    assert_int_equal(qf_sign_bundle_open(b, v2, "S", &out, &n, &err), QF_OK);
    free(out);
    json_decref(b);
    qf_sign_key_free(s1), qf_sign_key_free(v1), qf_sign_key_free(s2), qf_sign_key_free(v2);
    EVP_PKEY_free(k1), EVP_PKEY_free(k2);
    free(priv1), free(pub1), free(priv2), free(pub2), free(loose);
}

/* A folder model_signing 1.1.1 signed (key method) verifies in qforge, and not once edited. */
static void test_model_signing_fixture(void **state)
{
    (void)state;
    const char *src = QF_TEST_DATA "/signing/ms-folder";
    qf_verify_report rep;
    qf_error err;
    assert_int_equal(qf_sign_verify_dir(src, QF_TEST_DATA "/signing/ms-pub.pem", &rep, NULL, &err), QF_OK);
    assert_int_equal(rep.files_ok, 2);
    qf_verify_report_free(&rep);
    char *dst = qf_path_join(qf_test_tmp, "ms"), *d = qf_path_join(dst, "d");
    assert_int_equal(qf_mkdirs(d, &err), QF_OK);
    const char *names[] = {"a.txt", "d/b.bin", "model.sig"};
    for (int i = 0; i < 3; i++) {
        char *a = qf_path_join(src, names[i]), *b = qf_path_join(dst, names[i]);
        assert_int_equal(qf_file_copy(a, b, &err), QF_OK);
        free(a), free(b);
    }
    assert_int_equal(qf_sign_verify_dir(dst, QF_TEST_DATA "/signing/ms-pub.pem", &rep, NULL, &err), QF_OK);
    qf_verify_report_free(&rep);
    char *bp = qf_path_join(dst, "d/b.bin");
    assert_int_equal(qf_file_write_atomic(bp, "wOrld\n", 6, &err), QF_OK);
    assert_int_equal(qf_sign_verify_dir(dst, QF_TEST_DATA "/signing/ms-pub.pem", &rep, NULL, &err), QF_ERR_VERIFY);
    assert_non_null(strstr(err.msg, "d/b.bin"));
    qf_verify_report_free(&rep);
    free(bp), free(d), free(dst);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_vectors), cmocka_unit_test(test_writer_sha256),
        cmocka_unit_test(test_pae),            cmocka_unit_test(test_statement),
        cmocka_unit_test(test_statement_tampering), cmocka_unit_test(test_bundle),
        cmocka_unit_test(test_model_signing_fixture),
    };
    return cmocka_run_group_tests(tests, qf_test_tmp_setup, qf_test_tmp_teardown);
}
