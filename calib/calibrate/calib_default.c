/* calib_default.c - the bundled default calibration text, embedded in the binary so that
 * `qforge convert --method gptq` works with no extra file (see qf_calib_data.h). */
#include <stddef.h>

__asm__(".section .rodata\n"
        ".global qf_calib_default_text\n"
        ".type qf_calib_default_text, @object\n"
        ".balign 16\n"
        "qf_calib_default_text:\n"
        ".incbin \"calib/calibrate/data/default-calib.txt\"\n"
        ".global qf_calib_default_end\n"
        "qf_calib_default_end:\n"
        ".byte 0\n"
        ".previous\n");

extern const char qf_calib_default_text[], qf_calib_default_end[];

const char *qf_calib_default(size_t *len)
{
    *len = (size_t)(qf_calib_default_end - qf_calib_default_text);
    return qf_calib_default_text;
}
