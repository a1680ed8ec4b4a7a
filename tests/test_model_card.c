/* test_model_card.c - README.md rendering: front matter, carried licence and base model,
 * sections per layout, the validation table, the manifest entry, determinism, and the
 * re-render after `validate --record` keeping the artifact verifiable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "qf_fs.h"
#include "qf_manifest.h"
#include "qf_model_card.h"

static char *tmpdir(void)
{
    char tpl[] = "/tmp/qf-card-XXXXXX";
    char *d = mkdtemp(tpl);
    assert_non_null(d);
    return strdup(d);
}

static char *read_text(const char *dir, const char *name)
{
    char *p = qf_path_join(dir, name), *t = NULL;
    size_t n;
    qf_error e;
    assert_int_equal(qf_file_read_all(p, 1 << 20, &t, &n, &e), QF_OK);
    free(p);
    return t;
}

static void write_text(const char *dir, const char *name, const char *text)
{
    char *p = qf_path_join(dir, name);
    qf_error e;
    assert_int_equal(qf_file_write_atomic(p, text, strlen(text), &e), QF_OK);
    free(p);
}

static json_t *manifest(const char *layout, const char *scheme)
{
    json_t *m = qf_manifest_new();
    json_object_set_new(m, "recipe", json_pack("{s:s, s:s, s:s, s:[s], s:s}", "scheme", scheme, "method", "rtn", "layout",
                                               layout, "ignore", "re:.*down_proj", "default_ignore", "lm_head, norms"));
    json_object_set_new(m, "source", json_pack("{s:s, s:[{s:s, s:i, s:s}]}", "name", "tiny-llama", "files", "name",
                                               "model.safetensors", "size", 4000000, "xxh3_128",
                                               "00000000000000000000000000000000"));
    qf_hash128 h = qf_hash_bytes("x", 1);
    qf_manifest_add_file(m, "model-00001-of-00002.safetensors", 1000000, h, NULL);
    qf_manifest_add_file(m, "model-00002-of-00002.safetensors", 500000, h, NULL);
    qf_manifest_add_file(m, "config.json", 700, h, NULL);
    return m;
}

static void test_front_matter_and_sections(void **state)
{
    (void)state;
    char *d = tmpdir();
    write_text(d, "README.md", "---\nlicense: llama3.1\nbase_model:\n- meta-llama/Llama-3.1-8B\ntags: [x]\n---\n# old\n");
    json_t *m = manifest("compressed-tensors", "w4a16");
    qf_error e;
    assert_int_equal(qf_model_card_write(d, m, &e), QF_OK);
    char *t = read_text(d, "README.md");
    assert_true(strncmp(t, "---\nbase_model: meta-llama/Llama-3.1-8B\nlibrary_name: transformers\nlicense: llama3.1\n", 82) == 0);
    assert_non_null(strstr(t, "tags:\n- qforge\n- w4a16\n- compressed-tensors\n- quantized\n---\n"));
    assert_non_null(strstr(t, "## Recipe"));
    assert_non_null(strstr(t, "| `model-00002-of-00002.safetensors` | 500.0 kB |"));
    assert_non_null(strstr(t, "**1.50 MB**"));
    assert_null(strstr(t, "`config.json` |")); /* only weight files are listed */
    assert_non_null(strstr(t, "vllm serve"));
    assert_non_null(strstr(t, "`re:.*down_proj`"));
    assert_non_null(strstr(t, "Not validated yet"));
    assert_null(strstr(t, "# old"));
    /* the manifest lists the card last, with its real size and hash */
    json_t *files = json_object_get(m, "files");
    json_t *last = json_array_get(files, json_array_size(files) - 1);
    assert_string_equal(json_string_value(json_object_get(last, "name")), "README.md");
    assert_int_equal(json_integer_value(json_object_get(last, "size")), strlen(t));
    char hex[QF_HASH_HEX_LEN + 1];
    qf_hash_hex(qf_hash_bytes(t, strlen(t)), hex);
    assert_string_equal(json_string_value(json_object_get(last, "xxh3_128")), hex);
    /* rendering again (from its own output) gives the same bytes and one entry */
    assert_int_equal(qf_model_card_write(d, m, &e), QF_OK);
    char *t2 = read_text(d, "README.md");
    assert_string_equal(t, t2);
    int n = 0;
    size_t i;
    json_t *x;
    json_array_foreach(files, i, x) n += strcmp(json_string_value(json_object_get(x, "name")), "README.md") == 0;
    assert_int_equal(n, 1);
    free(t), free(t2);
    json_decref(m);
    qf_remove_tree(d);
    free(d);
}

static void test_layouts_and_escaping(void **state)
{
    (void)state;
    char *d = tmpdir();
    write_text(d, "config.json", "{\"license\": \"other: see LICENSE\", \"_name_or_path\": \"/home/me/model\"}");
    const char *layouts[] = {"gguf", "modelopt", "safetensors"};
    const char *needle[] = {"llama-cli -m model.gguf", "trtllm-serve", "AutoModelForCausalLM"};
    for (int k = 0; k < 3; k++) {
        json_t *m = manifest(layouts[k], k == 2 ? "none" : "q4_0");
        qf_error e;
        assert_int_equal(qf_model_card_write(d, m, &e), QF_OK);
        char *t = read_text(d, "README.md");
        assert_non_null(strstr(t, needle[k]));
        assert_non_null(strstr(t, "license: \"other: see LICENSE\"\n")); /* quoted: it holds a colon */
        assert_non_null(strstr(t, "base_model: tiny-llama\n"));         /* a local path is no base model */
        assert_non_null(strstr(t, k == 0 ? "library_name: gguf" : "library_name: transformers"));
        if (k == 2) assert_null(strstr(t, "- quantized"));
        free(t);
        json_decref(m);
    }
    qf_remove_tree(d);
    free(d);
}

static void test_refresh_after_record(void **state)
{
    (void)state;
    char *d = tmpdir();
    json_t *m = manifest("compressed-tensors", "nvfp4a16");
    /* make the listed files real so that verify can pass */
    json_array_clear(json_object_get(m, "files"));
    write_text(d, "model.safetensors", "not really safetensors but hashed");
    qf_manifest_add_file(m, "model.safetensors", 33, qf_hash_bytes("not really safetensors but hashed", 33), NULL);
    qf_error e;
    assert_int_equal(qf_model_card_write(d, m, &e), QF_OK);
    assert_int_equal(qf_manifest_write(d, m, &e), QF_OK);
    json_t *v = json_pack("{s:s, s:s, s:f, s:f, s:f, s:f, s:i, s:b}", "protocol", "ppl-512", "text", "eval.txt", "ppl", 12.5,
                          "quant_ppl", 12.75, "mean_kld", 0.01234, "top1_agreement", 0.9312, "scored_tokens", 2550, "passed",
                          1);
    assert_int_equal(qf_manifest_update(d, "validation", v, &e), QF_OK);
    assert_int_equal(qf_model_card_refresh(d, &e), QF_OK);
    char *t = read_text(d, "README.md");
    assert_non_null(strstr(t, "| quantized perplexity | 12.7500 |"));
    assert_non_null(strstr(t, "| top-1 agreement | 93.12 % |"));
    assert_non_null(strstr(t, "| passed | yes |"));
    assert_null(strstr(t, "Not validated yet"));
    json_t *loaded = NULL;
    assert_int_equal(qf_manifest_load(d, &loaded, &e), QF_OK); /* re-sealed */
    json_t *files = json_object_get(loaded, "files");
    json_t *last = json_array_get(files, json_array_size(files) - 1);
    assert_int_equal(json_integer_value(json_object_get(last, "size")), strlen(t));
    json_decref(loaded);
    free(t);
    json_decref(m);
    qf_remove_tree(d);
    free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_front_matter_and_sections),
        cmocka_unit_test(test_layouts_and_escaping),
        cmocka_unit_test(test_refresh_after_record),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
