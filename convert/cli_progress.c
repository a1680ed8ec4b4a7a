/* cli_progress.c - the CLI's progress callback (qf_cli.h): the bar the library reports to. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "qf_cli.h"
#include "qf_progress.h"

/* On a terminal one bar line redrawn; otherwise a plain line at each 10 % step. */
static void qf_cli_bar_draw(qf_cli_bar *b, const char *label, uint64_t done, uint64_t total, int final)
{
    double el = qf_now() - b->t_start, frac = (double)done / (double)(total ? total : 1);
    if (frac > 1) frac = 1;
    const char *unit = b->unit ? b->unit : "";
    char rate[48] = "";
    if (el > 0 && strcmp(unit, "B") == 0)
        snprintf(rate, sizeof rate, "%.1f MB/s", (double)done / el / 1e6);
    else if (el > 0)
        snprintf(rate, sizeof rate, "%.1f %s/s", (double)done / el, unit);
    if (b->is_tty) {
        char bar[31];
        int fill = (int)(frac * 30);
        for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
        bar[30] = 0;
        fprintf(stderr, "\r%-18s [%s] %5.1f%% %s %6.1fs%s", label, bar, 100 * frac, rate, el, final ? "\n" : "");
    } else {
        int dec = (int)(frac * 10);
        if (dec == b->last_decile && !final) return;
        b->last_decile = dec;
        fprintf(stderr, "%s: %3.0f%% %s %.1fs\n", label, 100 * frac, rate, el);
    }
    fflush(stderr);
}

void qf_cli_progress(void *user, const char *stage, uint64_t done, uint64_t total, const char *message)
{
    qf_cli_bar *b = user;
    if (message && strcmp(message, QF_PROGRESS_END) != 0) { /* an information line */
        if (b && b->lines) fprintf(stderr, "%s\n", message);
        return;
    }
    if (!b || !b->enabled) return;
    if (!message && done == 0) { /* a stage starts */
        b->t_start = qf_now();
        b->is_tty = isatty(2);
        b->last_decile = -1;
        return;
    }
    qf_cli_bar_draw(b, stage, done, total, message != NULL);
}
