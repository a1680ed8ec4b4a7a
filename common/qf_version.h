/* qf_version.h - the qforge version, written into every manifest. */
#ifndef QF_VERSION_H
#define QF_VERSION_H

#ifdef __cplusplus
extern "C" {
#endif
#define QF_VERSION "0.1.0"

#ifdef __cplusplus
}
#endif

#endif
