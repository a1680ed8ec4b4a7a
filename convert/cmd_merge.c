/* cmd_merge.c - `qforge merge`: assemble the parts of a partitioned conversion. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qf_cli.h"
#include "qf_convert.h"

static void qf_merge_help(void)
{
    printf("usage: qforge merge PART_DIR... -o OUT_DIR [--force] [--json] [-q]\n\n"
           "Assemble parts written by `qforge convert ... --layers A-B` (one per machine or job) into\n"
           "the artifact a single run would have written, byte for byte: same shards, config.json and\n"
           "manifest. Every decoder layer must be in exactly one part, and all parts must come from\n"
           "the same source and recipe. See docs/scaling.md for a Slurm job array.\n\n"
           "example:\n"
           "  qforge convert M -o p0 --scheme w4a16 --layers 0-15\n"
           "  qforge convert M -o p1 --scheme w4a16 --layers 16-31\n"
           "  qforge merge p0 p1 -o M-w4a16\n");
}

int qf_cmd_merge(int argc, char **argv)
{
    qf_convert_opts o = {0};
    o.method = "merge";
    o.layer_first = o.layer_last = -1;
    const char **parts = calloc((size_t)argc, sizeof *parts);
    int json = 0, quiet = 0;
    qf_error err = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (qf_cli_is_help(a)) {
            qf_merge_help();
            free(parts);
            return 0;
        } else if ((!strcmp(a, "-o") || !strcmp(a, "--out")) && i + 1 < argc) o.out = argv[++i];
        else if (!strcmp(a, "--force")) o.force = 1;
        else if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) quiet = 1;
        else if (a[0] == '-') {
            qf_fail(&err, QF_ERR_USAGE, "unknown option '%s' (qforge merge --help)", a);
            free(parts);
            return qf_cli_report_error("merge", &err, json);
        } else parts[o.n_parts++] = a;
    }
    if (!o.out || o.n_parts < 1) {
        qf_fail(&err, QF_ERR_USAGE, "need PART_DIR... and -o OUT_DIR (qforge merge --help)");
        free(parts);
        return qf_cli_report_error("merge", &err, json);
    }
    o.merge_parts = parts;
    qf_cli_bar bar = {.enabled = !quiet && !json, .unit = "B"};
    qf_ctx ctx = {.progress = qf_cli_progress, .user = &bar};
    o.ctx = &ctx;
    qf_convert_stats st;
    qf_status s = qf_convert_run(&o, &st, &err);
    free(parts);
    if (s != QF_OK) return qf_cli_report_error("merge", &err, json);
    if (json)
        printf("{\"ok\":true,\"out\":\"%s\",\"parts\":%d,\"shards\":%d,\"bytes_out\":%llu,\"seconds\":%.3f,"
               "\"peak_rss_kb\":%ld}\n",
               o.out, o.n_parts, st.n_shards, (unsigned long long)st.bytes_out, st.seconds, st.peak_rss_kb);
    else
        printf("%s: merged %d parts into %d shard(s), %.1f MB in %.2f s, peak memory %.0f MB\n", o.out, o.n_parts,
               st.n_shards, st.bytes_out / 1e6, st.seconds, st.peak_rss_kb * 1024.0 / 1e6);
    if (st.n_dense_experts) /* as convert says it: the parts' fused experts stayed in full precision */
        fprintf(stderr, "qforge merge: warning: %d fused expert tensor(s) kept in full precision (%s%s): listed in "
                "quantization_config.ignore, the manifest and README.md\n", st.n_dense_experts, st.dense_experts[0],
                st.n_dense_experts > 1 ? ", ..." : "");
    qf_convert_stats_free(&st);
    return 0;
}
