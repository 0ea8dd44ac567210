/* kernels_test_body.h: the checks of kernels_test.c for one element type.
 * Included once per type with T (float or double), S (f or d), EPS (the
 * type's machine epsilon) and VTOL (cbptt_vmath.h's stated relative error
 * of tanh and logistic) defined; every name it defines ends in _S. */
#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, S)

/* f(v) in long double, the reference of the activations. */
static long double FN(act_ref)(int act, long double v)
{
    switch (act) {
    case CBPTT_LOGISTIC: return 1.0L / (1.0L + expl(-v));
    case CBPTT_TANH: return tanhl(v);
    case CBPTT_RELU: return v > 0 ? v : 0;
    default: return v;
    }
}

/* C (+)= A W against a triple loop, for A plain or transposed (ak), W packed
 * from itself or its transpose, or W plain (ldw > 0), accumulate or not. */
static void FN(check_mm)(void)
{
    static const int ms[] = {1, 3, 4, 5, 8, 9, 17};
    static const int ns[] = {1, 3, 4, 7, 8, 15, 16, 17, 33, 64, 65};
    static const int ks[] = {1, 5, 16, 33};
    enum { MAXM = 17, MAXN = 65, MAXK = 33 };
    static T a[MAXM * MAXK], w[MAXK * MAXN], wt[MAXN * MAXK];
    static T packed[MAXK * MAXN], c[MAXM * (MAXN + 3)], c0[MAXM * (MAXN + 3)];
    unsigned im, in, ik;
    int form, acc, r, j, kk;
    for (im = 0; im < sizeof ms / sizeof *ms; im++)
    for (in = 0; in < sizeof ns / sizeof *ns; in++)
    for (ik = 0; ik < sizeof ks / sizeof *ks; ik++)
    for (form = 0; form < 4; form++)
    for (acc = 0; acc < 2; acc++) {
        const int m = ms[im], n = ns[in], k = ks[ik], ldc = n + 3;
        /* form 0: A plain, W packed; 1: A transposed (a[kk*m + r]), W
         * packed from its transpose; 2: W plain (ldw = n); 3: both. */
        const int a_t = form & 1, w_plain = form >= 2;
        const long lda = a_t ? 1 : k, ak = a_t ? m : 1;
        double worst = 0;
        for (r = 0; r < m * k; r++) a[r] = (T)rnd();
        for (kk = 0; kk < k; kk++)
            for (j = 0; j < n; j++) {
                w[kk * n + j] = (T)rnd();
                wt[j * k + kk] = w[kk * n + j];
            }
        for (r = 0; r < m * ldc; r++) c0[r] = c[r] = (T)rnd();
        if (!w_plain) {
            if (form == 1) FN(cbptt_pack)(n, k, wt, 1, k, packed);
            else FN(cbptt_pack)(n, k, w, n, 1, packed);
        }
        FN(cbptt_mm)(m, n, k, a, lda, ak, w_plain ? w : packed,
                     w_plain ? n : 0, c, ldc, acc);
        for (r = 0; r < m; r++) {
            for (j = 0; j < n; j++) {
                long double s = acc ? c0[r * ldc + j] : 0, mag = fabsl(s);
                for (kk = 0; kk < k; kk++) {
                    long double p = (long double)a[r * lda + kk * ak]
                                    * w[kk * n + j];
                    s += p;
                    mag += fabsl(p);
                }
                double e = fabsl(c[r * ldc + j] - s) / (mag + 1e-300);
                if (e > worst) worst = e;
            }
            for (j = n; j < ldc; j++)          /* past the row: untouched */
                check(c[r * ldc + j] == c0[r * ldc + j], "mm wrote past n",
                      m, n, k);
        }
        check(worst <= (k + 1) * EPS, "mm != triple loop", m, n, k);
        note("mm", worst / EPS);
    }
}

static void FN(check_col_sums)(void)
{
    static const long rowss[] = {1, 7, 8, 9, 33};
    static const int ns[] = {1, 3, 8, 17, 33};
    static T a[33 * 40], out[40], out0[40];
    unsigned ir, in;
    int acc, j;
    long r;
    for (ir = 0; ir < sizeof rowss / sizeof *rowss; ir++)
    for (in = 0; in < sizeof ns / sizeof *ns; in++)
    for (acc = 0; acc < 2; acc++) {
        const long rows = rowss[ir], lda = ns[in] + 5;
        const int n = ns[in];
        double worst = 0;
        for (r = 0; r < rows * lda; r++) a[r] = (T)rnd();
        for (j = 0; j < 40; j++) out0[j] = out[j] = (T)rnd();
        FN(cbptt_col_sums)(rows, n, a, lda, out, acc);
        for (j = 0; j < n; j++) {
            long double s = acc ? out0[j] : 0, mag = fabsl(s);
            for (r = 0; r < rows; r++) {
                s += a[r * lda + j];
                mag += fabsl((long double)a[r * lda + j]);
            }
            double e = fabsl(out[j] - s) / (mag + 1e-300);
            if (e > worst) worst = e;
        }
        for (j = n; j < 40; j++)
            check(out[j] == out0[j], "col_sums wrote past n", (int)rows, n, 0);
        check(worst <= (rows + 1) * EPS, "col_sums != sum", (int)rows, n, 0);
        note("col_sums", worst / EPS);
    }
}

/* z = f(z + b) row by row, contiguous rows (ldz == n: the flat loop) and
 * strided ones, every activation, against libm on the rounded z + b. */
static void FN(check_bias_act)(void)
{
    static const int ns[] = {1, 5, 16, 17, 64};
    static T z[9 * 70], z0[9 * 70], b[70];
    const double span = sizeof(T) == 4 ? 12.0 : 25.0;
    unsigned in;
    int act, strided, r, j;
    for (act = 0; act < CBPTT_N_ACTIVATIONS; act++)
    for (in = 0; in < sizeof ns / sizeof *ns; in++)
    for (strided = 0; strided < 2; strided++) {
        const int m = 9, n = ns[in], ldz = strided ? n + 3 : n;
        const double tol = (act == CBPTT_LOGISTIC || act == CBPTT_TANH)
                               ? VTOL : 0.0;
        double worst = 0;
        for (r = 0; r < m * ldz; r++) z0[r] = z[r] = (T)(span * rnd());
        for (j = 0; j < n; j++) b[j] = (T)(0.5 * rnd());
        FN(cbptt_bias_act_rows)(act, m, n, z, ldz, b);
        for (r = 0; r < m; r++) {
            for (j = 0; j < n; j++) {
                T v = z0[r * ldz + j] + b[j];
                long double ref = FN(act_ref)(act, v);
                double e = fabsl(z[r * ldz + j] - ref)
                           / (fabsl(ref) > 1e-300 ? fabsl(ref) : 1e-300);
                if (ref == 0 && z[r * ldz + j] == 0) e = 0;
                if (e > worst) worst = e;
            }
            for (j = n; j < ldz; j++)
                check(z[r * ldz + j] == z0[r * ldz + j],
                      "bias_act wrote past n", m, n, act);
        }
        check(worst <= tol, "bias_act != f(z + b)", m, n, act);
        note(act == CBPTT_TANH ? "bias_act tanh"
             : act == CBPTT_LOGISTIC ? "bias_act logistic" : "bias_act other",
             worst / EPS);
    }
}

/* d = f'(y) (g + carry ? d : 0), f' from the output y. */
static void FN(check_delta)(void)
{
    static T d[70], d0[70], y[70], g[70];
    int act, carry, i;
    const long len = 67;
    for (act = 0; act < CBPTT_N_ACTIVATIONS; act++)
    for (carry = 0; carry < 2; carry++) {
        double worst = 0;
        for (i = 0; i < len; i++) {
            y[i] = (T)FN(act_ref)(act, 3.0 * rnd());
            g[i] = (T)rnd();
            d0[i] = d[i] = (T)rnd();
        }
        FN(cbptt_delta_rows)(act, len, d, y, g, carry);
        for (i = 0; i < len; i++) {
            long double yy = y[i], e_in = (long double)g[i] + (carry ? d0[i] : 0);
            long double fp, mag_fp;
            switch (act) {
            case CBPTT_LOGISTIC: fp = yy * (1 - yy); mag_fp = fabsl(yy) * (1 + fabsl(yy)); break;
            case CBPTT_TANH: fp = 1 - yy * yy; mag_fp = 1 + yy * yy; break;
            case CBPTT_RELU: fp = yy > 0; mag_fp = 1; break;
            default: fp = 1; mag_fp = 1;
            }
            double e = fabsl(d[i] - fp * e_in)
                       / (mag_fp * (fabsl((long double)g[i]) + (carry ? fabsl((long double)d0[i]) : 0)) + 1e-300);
            if (e > worst) worst = e;
        }
        for (i = len; i < 70; i++) check(d[i] == d0[i], "delta wrote past len", (int)len, act, carry);
        check(worst <= 4 * EPS, "delta != f'(y) (g + carry)", (int)len, act, carry);
        note("delta", worst / EPS);
    }
}

/* The LSTM cell rows, forward then backward, against the cell's equations
 * (src/cbptt_lstm.h) in long double, for both forms, with and without the
 * carried errors and grad_c, and with one tiny output gate (the exact
 * tanh(c) path). */
static void FN(check_lstm)(void)
{
    static const int Hs[] = {1, 3, 8, 17, 33};
    enum { M = 5, MAXH = 33, MAXG = 4 * MAXH };
    static T z[M * MAXG], z0[M * MAXG], b[MAXG], cp[M * MAXH], c[M * MAXH],
        h[M * MAXH], gh[M * MAXH], gc[M * MAXH], ch[M * MAXH],
        cc[M * MAXH], cc0[M * MAXH], delta[M * MAXG], dcell[M * MAXH];
    unsigned ih;
    int fg, carry, has_gc, r, j;
    for (ih = 0; ih < sizeof Hs / sizeof *Hs; ih++)
    for (fg = 0; fg < 2; fg++) {
        const int H = Hs[ih], G = fg ? 4 : 3;
        const int oi = 0, of = H, og = (fg ? 2 : 1) * H, oo = og + H;
        double worst = 0;
        for (r = 0; r < M * G * H; r++) z0[r] = z[r] = (T)(4.0 * rnd());
        for (j = 0; j < G * H; j++) b[j] = (T)(0.5 * rnd());
        for (r = 0; r < M * H; r++) cp[r] = (T)(2.0 * rnd());
        /* row 1, unit 0: an output gate of about e^-60 (<= 1e-20) */
        z0[1 * G * H + oo] = z[1 * G * H + oo] = (T)-60.0;
        b[oo] = 0;
        FN(cbptt_lstm_fwd_rows)(M, H, fg, z, b, cp, c, h);
        for (r = 0; r < M; r++)
            for (j = 0; j < H; j++) {
                const T *zr = z0 + r * G * H;
                long double gi = FN(act_ref)(CBPTT_LOGISTIC, (T)(zr[oi + j] + b[oi + j]));
                long double gf = fg ? FN(act_ref)(CBPTT_LOGISTIC, (T)(zr[of + j] + b[of + j])) : 1;
                long double gg = FN(act_ref)(CBPTT_TANH, (T)(zr[og + j] + b[og + j]));
                long double go = FN(act_ref)(CBPTT_LOGISTIC, (T)(zr[oo + j] + b[oo + j]));
                long double cref = gf * cp[r * H + j] + gi * gg;
                long double cmag = fabsl(gf * cp[r * H + j]) + fabsl(gi * gg);
                long double href = go * tanhl(c[r * H + j]);
                const T *zo = z + r * G * H;
                double e = 0, t;
                t = fabsl(zo[oi + j] - gi) / gi; e = t > e ? t : e;
                t = fabsl(zo[og + j] - gg) / (fabsl(gg) + 1e-300); e = t > e ? t : e;
                t = fabsl(zo[oo + j] - go) / go; e = t > e ? t : e;
                if (fg) { t = fabsl(zo[of + j] - gf) / gf; e = t > e ? t : e; }
                t = fabsl(c[r * H + j] - cref) / (cmag + 1e-300); e = t > e ? t : e;
                t = fabsl(h[r * H + j] - href) / (fabsl(href) + 1e-300); e = t > e ? t : e;
                if (e > worst) worst = e;
            }
        /* gates: VTOL each; c and h: three roundings of them, and an ulp */
        check(worst <= 4 * VTOL, "lstm forward rows != cell equations", H, fg, 0);
        note("lstm forward", worst / EPS);

        for (carry = 0; carry < 2; carry++)
        for (has_gc = 0; has_gc < 2; has_gc++) {
            double wb = 0;
            for (r = 0; r < M * H; r++) {
                gh[r] = (T)rnd();
                gc[r] = (T)rnd();
                ch[r] = (T)rnd();
                cc0[r] = cc[r] = (T)rnd();
            }
            FN(cbptt_lstm_bwd_rows)(M, H, fg, carry, z, c, cp, h, gh,
                                    has_gc ? gc : 0, ch, cc, delta, dcell);
            for (r = 0; r < M; r++)
                for (j = 0; j < H; j++) {
                    const T *a = z + r * G * H;
                    const T *dr = delta + r * G * H;
                    const int q = r * H + j;
                    long double gi = a[oi + j], gg = a[og + j], go = a[oo + j];
                    long double gf = fg ? a[of + j] : 1;
                    long double tc = tanhl(c[q]);
                    long double dh = gh[q] + (carry ? ch[q] : 0);
                    long double dhm = fabsl((long double)gh[q]) + (carry ? fabsl((long double)ch[q]) : 0);
                    long double dc = (carry ? cc0[q] : 0) + (has_gc ? gc[q] : 0)
                                     + dh * go * (1 - tc * tc);
                    long double dcm = (carry ? fabsl((long double)cc0[q]) : 0)
                                      + (has_gc ? fabsl((long double)gc[q]) : 0)
                                      + dhm * go * (1 + tc * tc);
                    long double ref[6], mag[6], got[6];
                    int k2, nk = 0;
                    ref[nk] = dc; mag[nk] = dcm; got[nk++] = dcell[q];
                    ref[nk] = dc * gg * gi * (1 - gi); mag[nk] = dcm * fabsl(gg) * gi * (1 + gi); got[nk++] = dr[oi + j];
                    ref[nk] = dc * gi * (1 - gg * gg); mag[nk] = dcm * gi * (1 + gg * gg); got[nk++] = dr[og + j];
                    ref[nk] = dh * tc * go * (1 - go); mag[nk] = dhm * fabsl(tc) * go * (1 + go); got[nk++] = dr[oo + j];
                    ref[nk] = dc * gf; mag[nk] = dcm * gf; got[nk++] = cc[q];
                    if (fg) {
                        ref[nk] = dc * cp[q] * gf * (1 - gf);
                        mag[nk] = dcm * fabsl((long double)cp[q]) * gf * (1 + gf);
                        got[nk++] = dr[of + j];
                    }
                    for (k2 = 0; k2 < nk; k2++) {
                        double e = fabsl(got[k2] - ref[k2]) / (mag[k2] + 1e-300);
                        if (e > wb) wb = e;
                    }
                }
            /* tanh(c) = h / o is an ulp off (VTOL where o is tiny: tanh) */
            check(wb <= 2 * VTOL + 16 * EPS, "lstm backward rows != cell equations",
                  H, fg, carry * 2 + has_gc);
            note("lstm backward", wb / EPS);
        }
    }
}

/* The scalar vmath functions (inlined at the baseline) against libm over
 * the range, plus their limits; the vectorised ones at each level are the
 * bias_act checks above. */
static void FN(check_vmath)(void)
{
    const double top = sizeof(T) == 4 ? 80.0 : 700.0;
    double wt = 0, wl = 0, we = 0;
    long i;
    const long n = 200001;
    for (i = 0; i < n; i++) {
        /* even in x over [-top, top], denser near 0 */
        double u = -1.0 + 2.0 * i / (n - 1);
        T x = (T)(u * fabs(u) * top);
        long double rt = tanhl(x), rl = 1.0L / (1.0L + expl(-(long double)x));
        long double re = expl(-fabsl(x));
        double et = fabsl(FN(cbptt_tanh_v)(x) - rt) / (fabsl(rt) + 1e-300);
        double el = fabsl(FN(cbptt_logistic_v)(x) - rl) / rl;
        double ee = fabsl(FN(cbptt_exp_neg)(fabsl(x)) - re) / re;
        if (x == 0) et = 0;
        if (et > wt) wt = et;
        if (el > wl) wl = el;
        if (ee > we) we = ee;
    }
    check(wt <= VTOL, "tanh_v != tanh", 0, 0, 0);
    check(wl <= VTOL, "logistic_v != logistic", 0, 0, 0);
    check(we <= 4 * EPS, "exp_neg != exp(-a)", 0, 0, 0);
    note("vmath tanh", wt / EPS);
    note("vmath logistic", wl / EPS);
    note("vmath exp_neg", we / EPS);
    {
        const T inf = (T)INFINITY, nan = (T)NAN;
        check(FN(cbptt_tanh_v)(inf) == 1 && FN(cbptt_tanh_v)(-inf) == -1,
              "tanh_v(+-inf) != +-1", 0, 0, 0);
        check(FN(cbptt_logistic_v)(inf) == 1 && FN(cbptt_logistic_v)(-inf) == 0,
              "logistic_v(+inf, -inf) != 1, 0", 0, 0, 0);
        check(isnan(FN(cbptt_tanh_v)(nan)) && isnan(FN(cbptt_logistic_v)(nan)),
              "NaN does not propagate", 0, 0, 0);
        check(signbit(FN(cbptt_tanh_v)((T)-0.0)) && FN(cbptt_tanh_v)((T)-0.0) == 0,
              "tanh_v(-0) != -0", 0, 0, 0);
    }
}

/* The dispatched scans: finiteness, column maxima, the time-major copy. */
static void FN(check_scan)(void)
{
    enum { B = 3, TT = 5, F = 7 };
    static T src[B * TT * F], dst[B * TT * F], cm[F], bad[F], buf[200],
        copy[200];
    double out[F];
    int b, t, j, pos;
    for (pos = 0; pos < 200; pos += 13) {
        for (j = 0; j < 200; j++) buf[j] = (T)rnd();
        check(FN(cbptt_all_finite)(200, buf), "all_finite false on finite", pos, 0, 0);
        buf[pos] = (T)NAN;
        check(!FN(cbptt_all_finite)(200, buf), "all_finite missed a NaN", pos, 0, 0);
        buf[pos] = (T)-INFINITY;
        check(!FN(cbptt_copy_finite)(200, buf, copy), "copy_finite missed -inf", pos, 0, 0);
        check(memcmp(buf, copy, sizeof buf) == 0, "copy_finite copy", pos, 0, 0);
        buf[pos] = 0;
        check(FN(cbptt_copy_finite)(200, buf, copy), "copy_finite false on finite", pos, 0, 0);
    }
    for (j = 0; j < B * TT * F; j++) src[j] = (T)rnd();
    src[(2 * TT + 3) * F + 4] = (T)NAN;
    for (j = 0; j < F; j++) cm[j] = bad[j] = 0;
    FN(cbptt_time_major)(B, TT, F, src, TT * F, F, 1, dst, cm, bad);
    FN(cbptt_colmax_finish)(F, cm, bad, out);
    for (j = 0; j < F; j++) {
        T mx = 0;
        for (b = 0; b < B; b++)
            for (t = 0; t < TT; t++) {
                T v = src[(b * TT + t) * F + j];
                int same = dst[(t * B + b) * F + j] == v
                           || (isnan(v) && isnan(dst[(t * B + b) * F + j]));
                check(same, "time_major copy", b, t, j);
                if (fabs((double)v) > mx) mx = (T)fabs((double)v);
            }
        check(j == 4 ? isnan(out[j]) : out[j] == mx, "colmax", j, 0, 0);
    }
}

static void FN(check_all)(void)
{
    FN(check_mm)();
    FN(check_col_sums)();
    FN(check_bias_act)();
    FN(check_delta)();
    FN(check_lstm)();
    FN(check_vmath)();
    FN(check_scan)();
}

#undef FN
#undef CAT
#undef CAT_
