/* qf_gguf_blocks.h - internal to formats/: the ggml block codecs, one function set per block
 * type, behind qf_ggml_quantize_row / qf_ggml_dequantize_row (qf_gguf_quants.c).
 *
 * Every block format qforge writes is affine per element: value = a * q + b with an integer
 * code q in [0, qmax] and (a, b) fixed by the block's header (a sub-block's scale and min for
 * the K types).  qf_gguf_block_affine exposes that, and qf_gguf_block_set_codes rewrites the
 * codes of a block whose header is already chosen: what GPTQ's column sweep needs to round
 * each column under the block's own scales (qf_gguf_gptq.c).  The quantizers take an optional
 * importance per value (imp, NULL: llama.cpp's reference rule): with it the block scales and
 * mins minimise the imp-weighted squared error (the imatrix idea). */
#ifndef QF_GGUF_BLOCKS_H
#define QF_GGUF_BLOCKS_H

#include <stdint.h>

/* One block of x (qf_ggml_block_size values) into its bytes. */
void qf_gguf_q8_0_block(const float *x, const float *imp, uint8_t *b);
void qf_gguf_q4_0_block(const float *x, const float *imp, uint8_t *b);
void qf_gguf_q4_1_block(const float *x, const float *imp, uint8_t *b);
void qf_gguf_q5_0_block(const float *x, const float *imp, uint8_t *b);
void qf_gguf_q5_1_block(const float *x, const float *imp, uint8_t *b);
void qf_gguf_q4_k_block(const float *x, const float *imp, uint8_t *b);
void qf_gguf_q5_k_block(const float *x, const float *imp, uint8_t *b);
void qf_gguf_q6_k_block(const float *x, const float *imp, uint8_t *b);

/* One block's bytes into its values (bit-exact with gguf-py's dequantize): the 32-value
 * types (qf_gguf_blocks32.c) and the K types (qf_gguf_kquants.c). */
void qf_gguf_block32_decode(int type, const uint8_t *b, float *y);
void qf_gguf_kquant_decode(int type, const uint8_t *b, float *y);

/* a[i], b[i] for the block's values (value i = a[i] * q + b[i], up to the decoder's float
 * rounding), *qmax the largest code; 0 when the type is not one of the file's. */
int qf_gguf_block32_affine(int type, const uint8_t *blk, float *a, float *b, int *qmax);
int qf_gguf_kquant_affine(int type, const uint8_t *blk, float *a, float *b, int *qmax);
/* Write codes q[0 .. block-1] (each in [0, qmax]) into a block, keeping its header. */
void qf_gguf_block32_set_codes(int type, uint8_t *blk, const uint8_t *q);
void qf_gguf_kquant_set_codes(int type, uint8_t *blk, const uint8_t *q);

/* shared helpers (qf_gguf_blocks32.c) */
void qf_gguf_put_f16(uint8_t *p, float v);
float qf_gguf_get_f16(const uint8_t *p);
int qf_gguf_nearest(float v); /* round half to even, as ggml's nearest_int */
/* Symmetric fit of x[n] ~ d * (L - nmax), L in [0, 2 nmax - 1], minimising the w-weighted
 * squared error over a grid of 21 scales around max / -nmax with least-squares refits;
 * returns d (0 for an all-zero block). */
float qf_gguf_fit_sym(const float *x, const float *w, int n, int nmax, uint8_t *L);
/* Affine fit x[n] ~ scale * L + min, L in [0, nmax]: min/max grid, then nstep + 1 stretched
 * grids (rmin + rdelta * k) with the weighted least-squares (scale, min) of each (ggml's
 * make_qkx2_quants).  flags: QF_FIT_CLAMP_MIN keeps the min <= 0 (the K types store -min);
 * QF_FIT_GGML_ORDER sums w * l * l and w * (e * e) in ggml's float order, so the bytes are
 * llama.cpp's (without it: qforge's first Q4_K order, kept so Q4_K files stay byte-stable;
 * it differs from llama-quantize's in a few blocks).  Returns scale; *min the min. */
enum { QF_FIT_CLAMP_MIN = 1, QF_FIT_GGML_ORDER = 2 };
float qf_gguf_fit_affine(const float *x, const float *w, int n, int nmax, float rmin, float rdelta, int nstep,
                         int flags, uint8_t *L, float *min);

#endif /* QF_GGUF_BLOCKS_H */
