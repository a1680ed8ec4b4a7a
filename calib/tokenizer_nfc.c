/* tokenizer_nfc.c - Unicode NFC for the NFC normalizer (Qwen2). */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

qf_status qf_tk_nfc(const char *in, size_t len, char **out, size_t *out_len, qf_error *err)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)in[i] >= 0xCC)
            return qf_fail(err, QF_ERR_UNSUPPORTED, "NFC normalization of text beyond U+0300 is not implemented");
    if (!(*out = malloc(len + 1))) return qf_fail(err, QF_ERR_NOMEM, "out of memory normalizing");
    memcpy(*out, in, len);
    *out_len = len;
    return QF_OK;
}
