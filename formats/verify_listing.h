/* verify_listing.h - internal to formats/: a digest listing read into memory
 * (the formats accepted are described in qf_verify_folder.h). */
#ifndef QF_VERIFY_LISTING_H
#define QF_VERIFY_LISTING_H

#include <jansson.h>
#include <stdint.h>

#include "qf_error.h"
#include "qf_sha256.h"

typedef struct qf_listing_entry {
    char *name; /* relative, "./" stripped */
    int has_sha256, has_size;
    qf_sha256 sha256;
    uint64_t size;
} qf_listing_entry;

typedef struct qf_listing {
    int n;
    qf_listing_entry *e;
} qf_listing;

/* QF_ERR_FORMAT naming the file and line or entry when it is neither format; names must
 * stay inside the folder and appear once. */
qf_status qf_listing_read(const char *path, qf_listing *out, qf_error *err);
void qf_listing_free(qf_listing *l);

#endif /* QF_VERIFY_LISTING_H */
