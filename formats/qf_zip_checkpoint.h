/* qf_zip_checkpoint.h - reading PyTorch .bin / .pt checkpoints (torch.save zip archives).
 *
 * Owns the second way into a qf_checkpoint: the same tensor table qf_safetensors.h builds,
 * filled from torch.save archives, so the converter, the runner and inspect use .bin models
 * unchanged.  qf_checkpoint_open calls in here for a .bin/.pt/.pth file, or for a folder that
 * holds PyTorch weights and no safetensors.
 *
 * Archive layout (torch >= 1.6): a zip (ZIP64 allowed) whose entries share one top folder
 * "<prefix>/" (the first entry's name up to its first '/'; never assumed to be "archive"):
 *   <prefix>/data.pkl     the state_dict, pickle protocol 2 (qf_pickle.h: restricted VM)
 *   <prefix>/byteorder    "little" or "big" (absent: little)
 *   <prefix>/data/<key>   raw bytes of storage <key>, stored, data 64-byte aligned
 *   <prefix>/version, .format_version, .storage_alignment, .data/serialization_id (ignored)
 * The central directory and local headers are parsed here (bounds-checked: every entry's
 * local header and data must lie inside the file, local and central names must agree) and
 * the archive is cross-checked by libzip (zip_open ZIP_CHECKCONS), which also inflates
 * deflated entries.  Stored entries are used in place: data offset = local header offset +
 * 30 + name length + extra length.  CRCs of stored entries are not checked (as torch does
 * not); inflated entries are CRC-checked by libzip.
 *
 * Each tensor of the state_dict is a view of a storage.  It points into the mapping when the
 * view is contiguous, the archive is little-endian and the bytes are aligned to the element
 * size; otherwise (strided views, big-endian archives, deflated or misaligned storages) it is
 * copied into a contiguous, host-order buffer that the checkpoint owns (qf_checkpoint.owned,
 * freed by qf_checkpoint_free).  Views sharing a storage each get their own table entry.
 * For copied tensors qf_tensor.offset is the file offset of the storage they were copied
 * from (the file size when there is none), so qf_checkpoint_release stays harmless.
 *
 * Errors name the file and the record or tensor: QF_ERR_FORMAT (not a zip, truncated,
 * storage missing or shorter than a view needs), QF_ERR_SECURITY (a pickle asking for
 * anything outside the allow-list), QF_ERR_UNSUPPORTED (legacy pre-1.6 or TorchScript
 * archives, encrypted or exotic entries, unsupported dtypes).
 */
#ifndef QF_ZIP_CHECKPOINT_H
#define QF_ZIP_CHECKPOINT_H

#include <stdint.h>

#include "qf_error.h"
#include "qf_safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when qf_checkpoint_open should read path as PyTorch weights: a .bin / .pt / .pth file,
 * or a folder with pytorch_model.bin(.index.json) or one weights .bin/.pt/.pth file and no
 * safetensors (training_args.bin, optimizer.pt, scheduler.pt, scaler.pt, rng_state*.pth are
 * never taken for weights). */
int qf_zip_checkpoint_applies(const char *path);

/* Open a folder (pytorch_model.bin.index.json, else pytorch_model.bin, else its one weights
 * file) or one archive.  Every shard the index names must exist and hold the tensors mapped
 * to it.  *out is set only on success. */
qf_status qf_zip_checkpoint_open(const char *path, qf_checkpoint **out, qf_error *err);

/* Read one archive image data[size] (label names it in messages) and append its tensors to
 * ck->tensors with file = file_index, adding any copies to ck->owned.  The image must stay
 * valid as long as ck.  Used by qf_zip_checkpoint_open, the tests and the fuzz harness. */
qf_status qf_zip_archive_read(const char *label, const uint8_t *data, uint64_t size, int file_index, qf_checkpoint *ck,
                              qf_error *err);

#ifdef __cplusplus
}
#endif

#endif /* QF_ZIP_CHECKPOINT_H */
