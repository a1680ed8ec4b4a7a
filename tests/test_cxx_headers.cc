// test_cxx_headers.cc - every public header of libqforge.a compiles as C++ and links with C
// linkage.
//
// build/tests/public_headers.inc (made by the Makefile) includes every header of the library
// folders whose first line does not say "internal to", so a new public header is covered
// without editing this file.  Taking the address of one entry point per module and calling a
// few makes the linker resolve them in libqforge.a: a header without its extern "C" guard
// would leave a C++-mangled name that the C library does not define.
#include "public_headers.inc"

#include <cstdio>
#include <cstring>

int main()
{
    const void *entry_points[] = {
        reinterpret_cast<const void *>(&qf_convert_run),      reinterpret_cast<const void *>(&qf_convert_opts_default),
        reinterpret_cast<const void *>(&qf_verify_artifact),  reinterpret_cast<const void *>(&qf_calibrate),
        reinterpret_cast<const void *>(&qf_config_load),      reinterpret_cast<const void *>(&qf_quantize_rtn),
        reinterpret_cast<const void *>(&qf_model_load),       reinterpret_cast<const void *>(&qf_model_forward),
        reinterpret_cast<const void *>(&qf_tokenizer_load),   reinterpret_cast<const void *>(&qf_checkpoint_open),
        reinterpret_cast<const void *>(&qf_gguf_parse),       reinterpret_cast<const void *>(&qf_gptq_quantize),
        reinterpret_cast<const void *>(&qf_manifest_write),   reinterpret_cast<const void *>(&qf_sha256_new),
    };
    for (const void *p : entry_points)
        if (!p) return 1;
    // and a few real calls through the C ABI
    qf_convert_opts o;
    qf_convert_opts_default(&o);
    qf_error err;
    std::memset(&err, 0, sizeof err);
    if (qf_convert_set_method(&o, "no-such-method", &err) != QF_ERR_USAGE || !std::strstr(err.msg, "no-such-method")) {
        std::fprintf(stderr, "qf_convert_set_method did not refuse an unknown method: %s\n", err.msg);
        return 1;
    }
    qf_model_config cfg;
    if (qf_config_load("/nonexistent/config.json", &cfg, &err) == QF_OK) return 1;
    if (!qf_scheme_find("w4a16")) return 1;
    std::printf("C++: %zu public entry points link with C linkage; calls through the C ABI behave\n",
                sizeof entry_points / sizeof *entry_points);
    return 0;
}
