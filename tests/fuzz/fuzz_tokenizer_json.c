/* fuzz_tokenizer_json.c - libFuzzer target: tokenizer.json loading and encoding.
 *
 * Input layout: the bytes before the first NUL are a tokenizer.json; the bytes after it (if
 * any) are text to encode.  Whatever the bytes, load must return (no crash, no leak) with
 * QF_OK or a one-line message naming the input; a loaded tokenizer must encode the text (or
 * refuse it as not UTF-8) with every id inside [0, vocab_size), and encoding the same text
 * twice must give the same ids.
 *
 * Build with clang: clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined
 *   -Icommon -Icalib/tokenizer tests/fuzz/fuzz_tokenizer_json.c calib/tokenizer/qf_tokenizer.c calib/tokenizer/tokenizer_*.c
 *   common/qf_error.c -ljansson -lpcre2-8 -lxxhash -o build-fuzz/fuzz_tokenizer_json
 * Replayed without libFuzzer by tests/test_tokenizer.c (test_fuzz_tokenizer_json).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qf_tokenizer.h"

#include "qf_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t json_len = nul ? (size_t)(nul - data) : size;
    const char *text = nul ? (const char *)nul + 1 : "";
    size_t text_len = nul ? size - json_len - 1 : 0;

    qf_tokenizer *tok = NULL;
    qf_error err;
    memset(&err, 0, sizeof err);
    qf_status st = qf_tokenizer_load_json((const char *)data, json_len, "fuzz.json", &tok, &err);
    if (st != QF_OK) {
        QF_FUZZ_ASSERT(tok == NULL);
        QF_FUZZ_ASSERT(err.code == st && strstr(err.msg, "fuzz.json") && !strchr(err.msg, '\n'));
        return 0;
    }
    int32_t n_vocab = qf_tokenizer_vocab_size(tok);
    for (int32_t id = 0; id < n_vocab && id < 4096; id++) (void)qf_tokenizer_token_text(tok, id);

    int32_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    qf_status sa = qf_tokenizer_encode(tok, text, text_len, &a, &na, &err);
    qf_status sb = qf_tokenizer_encode(tok, text, text_len, &b, &nb, &err);
    QF_FUZZ_ASSERT(sa == sb);
    if (sa == QF_OK) {
        QF_FUZZ_ASSERT(a && b && na == nb && memcmp(a, b, na * sizeof *a) == 0);
        for (size_t i = 0; i < na; i++) QF_FUZZ_ASSERT(a[i] >= 0 && a[i] < n_vocab);
    } else {
        QF_FUZZ_ASSERT(!a && !b && na == 0);
    }
    free(a);
    free(b);
    qf_tokenizer_free(tok);
    return 0;
}
