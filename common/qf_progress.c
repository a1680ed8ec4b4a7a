/* qf_progress.c - terminal progress bar (see qf_progress.h). */
#include "qf_progress.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double qf_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void qf_progress_begin(qf_progress *p, int enabled, const char *label, uint64_t total, const char *unit)
{
    if (!p) return;
    memset(p, 0, sizeof *p);
    p->enabled = enabled;
    snprintf(p->label, sizeof p->label, "%s", label);
    p->total = total ? total : 1;
    p->unit = unit ? unit : "";
    p->is_tty = isatty(2);
    p->t_start = p->t_last_draw = qf_now();
    p->last_decile = -1;
}

static void qf_progress_draw(qf_progress *p, int final)
{
    double el = qf_now() - p->t_start, frac = (double)p->done / (double)p->total;
    if (frac > 1) frac = 1;
    char rate[48] = "";
    if (el > 0 && strcmp(p->unit, "B") == 0)
        snprintf(rate, sizeof rate, "%.1f MB/s", (double)p->done / el / 1e6);
    else if (el > 0)
        snprintf(rate, sizeof rate, "%.1f %s/s", (double)p->done / el, p->unit);
    if (p->is_tty) {
        char bar[31];
        int fill = (int)(frac * 30);
        for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
        bar[30] = 0;
        fprintf(stderr, "\r%-18s [%s] %5.1f%% %s %6.1fs%s", p->label, bar, 100 * frac, rate, el,
                final ? "\n" : "");
    } else {
        int dec = (int)(frac * 10);
        if (dec == p->last_decile && !final) return;
        p->last_decile = dec;
        fprintf(stderr, "%s: %3.0f%% %s %.1fs\n", p->label, 100 * frac, rate, el);
    }
    fflush(stderr);
}

void qf_progress_add(qf_progress *p, uint64_t n)
{
    if (!p || !p->enabled) return;
    int draw = 0;
#pragma omp critical(qf_progress)
    {
        p->done += n;
        double t = qf_now();
        if (t - p->t_last_draw > 0.1) {
            p->t_last_draw = t;
            draw = 1;
        }
        if (draw) qf_progress_draw(p, 0);
    }
}

void qf_progress_end(qf_progress *p)
{
    if (!p || !p->enabled) return;
    p->done = p->total;
    qf_progress_draw(p, 1);
}
