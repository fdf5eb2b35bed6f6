// Fused value-and-gradient kernels of hierlin_stan's marginal and collapsed densities
// (CmdStan only: a user C++ header, compiled with stanc --allow-undefined).
//
// The *_fused.stan programs declare these functions without a body; their pure twins
// (marginal.stan, collapsed.stan: the notebook's model) define the same functions, with the
// same signatures, in Stan. Tests hold both equal (value and gradient, 1e-10 relative).
// The formula programs (glm_*.stan) have no fused twins yet.
//
// How CmdStan uses this file: cmdstanpy's user_header= compiles the model with
// `-include <this file>`, i.e. BEFORE the generated model code. The first line includes
// Stan's model header, so GCC can still use CmdStan's precompiled header for it. stanc
// (--allow-undefined) emits no declaration; the model calls the functions unqualified
// with one extra trailing argument `std::ostream* pstream__`, so plain templates at
// global scope are found, whatever the model's namespace. Data vectors arrive as
// Eigen::Map<Eigen::VectorXd> (data block) or Eigen::VectorXd (transformed data): taken
// by const reference through a template and read with .data(), never copied. Each
// function computes its value and partials in double in one or two passes over the
// groups and returns ONE var (make_callback_var) whose callback adds the partials to the
// operands' adjoints; an all-double call (generated quantities, log_prob without
// gradient) returns a double. A point where the density is not finite throws
// std::domain_error, which Stan treats as reject(): the proposal is rejected.
#ifndef HIERLIN_FUSED_HPP
#define HIERLIN_FUSED_HPP
#include <stan/model/model_header.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <ostream>
#include <stdexcept>
#include <type_traits>
#include <vector>

namespace hierlin_fused {
constexpr double DMIN = std::numeric_limits<double>::min();
constexpr double DMAX = std::numeric_limits<double>::max();
constexpr double LOG_2PI = 1.83787706640934548356;
constexpr double LN2 = 0.69314718055994530942;

// sum of log d over a pass. Fast: products of mantissas, one std::log at the end
// (renormalised every 32 terms); valid when every d is a positive normal double below
// DBL_MAX, which the callers check (else they redo the pass with Fast = false).
template <bool Fast>
struct LogSum {
  double prod = 1.0, slow = 0.0;
  int64_t expo = 0;
  int cnt = 0;
  inline void add(double d) {
    if constexpr (Fast) {
      uint64_t bits;
      std::memcpy(&bits, &d, sizeof bits);
      expo += static_cast<int64_t>((bits >> 52) & 0x7ff) - 1022;
      bits = (bits & 0x800fffffffffffffULL) | (1022ULL << 52);  // mantissa in [0.5, 1)
      double m;
      std::memcpy(&m, &bits, sizeof m);
      prod *= m;
      if (++cnt == 32) {
        int e;
        prod = std::frexp(prod, &e);
        expo += e;
        cnt = 0;
      }
    } else {
      slow += std::log(d);
    }
  }
  inline double value() const {
    return Fast ? std::log(prod) + static_cast<double>(expo) * LN2 : slow;
  }
};

inline bool normal_positive(double v) { return v >= DMIN && v < DMAX; }

template <typename T>
inline void push_adj(const T& x, double adj, double g) {
  if constexpr (stan::is_var<T>::value) x.vi_->adj_ += adj * g;
}

[[noreturn]] inline void reject(const char* what) { throw std::domain_error(what); }

// ------------------------------------------------------------------------------ marginal
// log p(y | a, mu_b, sigma_b, eps) with the slopes integrated out (marginal.stan). Per group
// d_j = eps^2 + sigma_b^2 Sxx_j, Sxr_j = r*_j - (a - a*) Sx_j - (mu_b - mu*) Sxx_j, and
//   -2 log p = N log 2pi + (N - J) log eps^2 + sum_j log d_j
//              + (rss_min + c2 (a - a*)^2) / eps^2 + sum_j Sxr_j^2 / (Sxx_j d_j).
// grad = d/d(a, mu_b, sigma_b, eps).
template <bool Fast, typename V1, typename V2, typename V3>
bool marginal_pass(double da, double dm, double e, double s, const V1& sx_v, const V2& sxx_v, const V3& r_v,
                   double (&acc)[7], double& logsum) {
  const double* sx = sx_v.data();
  const double* sxx = sxx_v.data();
  const double* rr = r_v.data();
  const Eigen::Index J = sx_v.size();
  double Q = 0, W0 = 0, W1 = 0, Q2 = 0, Q3 = 0, Ga = 0, Gm = 0, dmax = 0;
  LogSum<Fast> ld;
  for (Eigen::Index j = 0; j < J; ++j) {
    const double xx = sxx[j];
    const double d = e + s * xx;
    const double sxr = rr[j] - da * sx[j] - dm * xx;
    const double ss = xx > 0 ? xx : 1.0;
    const double t = 1.0 / (ss * d);  // 1 / (Sxx d)
    const double w = ss * t;          // 1 / d
    const double st = sxr * t;
    const double q = sxr * st;        // Sxr^2 / (Sxx d)
    ld.add(d);
    dmax = dmax > d ? dmax : d;
    Q += q;
    W0 += w;
    W1 += xx * w;
    Q2 += q * w;
    Q3 += xx * q * w;
    Ga += st * sx[j];
    Gm += st * xx;
  }
  acc[0] = Q; acc[1] = W0; acc[2] = W1; acc[3] = Q2; acc[4] = Q3; acc[5] = Ga; acc[6] = Gm;
  logsum = ld.value();
  return dmax < DMAX;
}

template <typename V1, typename V2, typename V3>
double marginal_kernel(double a, double mu, double sb, double ep, int N, const V1& sx, const V2& sxx, const V3& r,
                       double a_star, double mu_star, double c2, double rss_min, double* grad) {
  const Eigen::Index J = sx.size();
  const double e = ep * ep, s = sb * sb, da = a - a_star, dm = mu - mu_star;
  double S[7], logsum;
  bool done = false;
  if (normal_positive(e) && s >= 0 && s < DMAX) done = marginal_pass<true>(da, dm, e, s, sx, sxx, r, S, logsum);
  if (!done) marginal_pass<false>(da, dm, e, s, sx, sxx, r, S, logsum);
  const double rss = rss_min + c2 * da * da;
  const double val = -0.5 * (N * LOG_2PI + (N - J) * std::log(e) + logsum + rss / e + S[0]);
  grad[0] = -c2 * da / e + S[5];
  grad[1] = S[6];
  grad[2] = -sb * (S[2] - S[4]);
  grad[3] = -ep * ((N - J) / e + S[1] - rss / (e * e) - S[3]);
  return val;
}

// ----------------------------------------------------------------------------- collapsed
// log p(y | sigma_b, eps), beta = (a, mu_b) integrated out too (collapsed.stan), over the K
// groups with Sxx > 0. With d_j = eps^2 + sigma_b^2 Sxx_j, t_j = 1 / (Sxx_j d_j), F_j = (Sx_j, Sxx_j):
//   P = [[c2/eps^2, 0], [0, 0]] + S0^-1 + sum_j t_j F_j F_j',  g = S0^-1 (m0 - beta*) + sum_j t_j F_j r_j,
//   m = P^-1 g,  Q(m) = sum_j t_j (r_j - F_j'm)^2 + c2 m1^2/eps^2 + (m - (m0 - beta*))' S0^-1 (...),
//   -2 log p = N log 2pi + (N - K) log eps^2 + sum_j log d_j + log det S0 + log det P + rss_min/eps^2 + Q(m).
// Pass 1: P, g, sum log d -> L = chol(P), m. Pass 2: Q(m) term by term (>= 0, nothing cancels; m is the
// minimiser, so an error in m enters only quadratically) and, with V = P^-1 (envelope theorem),
//   d(-2 log p)/d d_j = 1/d_j - t_j (F_j'V F_j + (r_j - F_j'm)^2) / d_j.
struct CollapsedBeta {
  double L11, L21, L22, m1, m2;
};

template <bool Fast, typename V1, typename V2, typename V3>
bool collapsed_pass1(double e, double s, const V1& sx_v, const V2& sxx_v, const V3& r_v, double (&acc)[5],
                     double& logsum) {
  const double* sx = sx_v.data();
  const double* sxx = sxx_v.data();
  const double* rr = r_v.data();
  const Eigen::Index K = sx_v.size();
  double A0 = 0, A1 = 0, A2 = 0, A3 = 0, A4 = 0, dmax = 0;
  LogSum<Fast> ld;
  for (Eigen::Index j = 0; j < K; ++j) {
    const double x = sx[j], xx = sxx[j], r = rr[j];
    const double d = e + s * xx;
    const double t = 1.0 / (xx * d);
    const double w = xx * t;
    const double tx = t * x;
    ld.add(d);
    dmax = dmax > d ? dmax : d;
    A0 += tx * x;  // P11
    A1 += w * x;   // P12
    A2 += w * xx;  // P22
    A3 += tx * r;  // g1
    A4 += w * r;   // g2
  }
  acc[0] = A0; acc[1] = A1; acc[2] = A2; acc[3] = A3; acc[4] = A4;
  logsum = ld.value();
  return dmax < DMAX;
}

// Pass 1 and the 2x2 solve: L = chol(P) by hand and m = P^-1 g. Throws (reject) when P is not
// finite and positive definite (far out in early warm-up).
template <typename V1, typename V2, typename V3>
CollapsedBeta collapsed_beta(double e, double s, const V1& sx, const V2& sxx, const V3& r, double c2, double va,
                             double vm, double g01, double g02, double* logsum_out) {
  double S[5], logsum;
  bool done = false;
  if (normal_positive(e) && s >= 0 && s < DMAX) done = collapsed_pass1<true>(e, s, sx, sxx, r, S, logsum);
  if (!done) collapsed_pass1<false>(e, s, sx, sxx, r, S, logsum);
  const double P11 = c2 / e + S[0] + 1.0 / va, P12 = S[1], P22 = S[2] + 1.0 / vm;
  const double g1 = g01 + S[3], g2 = g02 + S[4];
  if (!(P11 > 0) || !(P11 < DMAX) || !std::isfinite(P12) || !std::isfinite(P22))
    reject("hierlin collapsed: P is not finite (sigma_b or eps too far out)");
  const double L11 = std::sqrt(P11);
  const double L21 = P12 / L11;
  const double L22sq = P22 - L21 * L21;
  if (!(L22sq > 0) || !(L22sq < DMAX)) reject("hierlin collapsed: P is not positive definite");
  const double L22 = std::sqrt(L22sq);
  const double z1 = g1 / L11, z2 = (g2 - L21 * z1) / L22;
  const double m2 = z2 / L22, m1 = (z1 - L21 * m2) / L11;
  if (logsum_out) *logsum_out = logsum;
  return {L11, L21, L22, m1, m2};
}

template <typename V1, typename V2, typename V3>
double collapsed_kernel(double sb, double ep, int N, const V1& sx_v, const V2& sxx_v, const V3& r_v, double c2,
                        double rss_min, double va, double vm, double g01, double g02, double* grad) {
  const Eigen::Index K = sx_v.size();
  const double e = ep * ep, s = sb * sb;
  double logsum;
  const CollapsedBeta B = collapsed_beta(e, s, sx_v, sxx_v, r_v, c2, va, vm, g01, g02, &logsum);
  const double m1 = B.m1, m2 = B.m2;
  const double i11 = 1 / B.L11, i22 = 1 / B.L22, i21 = -B.L21 * i11 * i22;  // L^-1
  const double V11 = i11 * i11 + i21 * i21, V12 = i21 * i22, V22 = i22 * i22;  // P^-1
  const double* sx = sx_v.data();
  const double* sxx = sxx_v.data();
  const double* rr = r_v.data();
  double T0 = 0, T1 = 0, T2 = 0;
  for (Eigen::Index j = 0; j < K; ++j) {
    const double x = sx[j], xx = sxx[j];
    const double d = e + s * xx;
    const double t = 1.0 / (xx * d);
    const double w = xx * t;
    const double res = rr[j] - m1 * x - m2 * xx;  // r_j - F_j'm
    const double c = (V11 * x + 2 * V12 * xx) * x + V22 * xx * xx + res * res;
    const double dj = w - c * t * w;  // d(-2 log p)/d d_j
    T0 += res * res * t;
    T1 += dj;
    T2 += dj * xx;
  }
  const double pa = m1 - g01 * va, pm = m2 - g02 * vm;  // m - (m0 - beta*)
  const double Qm = T0 + c2 * m1 * m1 / e + pa * pa / va + pm * pm / vm;
  const double val = -0.5 * (N * LOG_2PI + (N - K) * std::log(e) + logsum + std::log(va) + std::log(vm)
                             + 2 * (std::log(B.L11) + std::log(B.L22)) + rss_min / e + Qm);
  const double De = (N - K) / e - (rss_min + c2 * (V11 + m1 * m1)) / (e * e) + T1;  // d(-2 log p)/d eps^2
  grad[0] = -sb * T2;
  grad[1] = -ep * De;
  return val;
}

template <typename... Ts>
using ret_t = stan::return_type_t<Ts...>;
}  // namespace hierlin_fused

// ============================================================ the functions the Stan programs declare
// real hierlin_marginal_ll(real a, real mu_b, real sigma_b, real eps, int N, data vector sum_x,
//   data vector sum_xx, data vector sxx_safe, data vector r_star, data real a_star, data real mu_star,
//   data real c2, data real rss_min)
template <typename TA, typename TM, typename TS, typename TE, typename V1, typename V2, typename V3, typename V4>
inline hierlin_fused::ret_t<TA, TM, TS, TE> hierlin_marginal_ll(const TA& a, const TM& mu_b, const TS& sigma_b,
                                                                const TE& eps, int N, const V1& sum_x,
                                                                const V2& sum_xx, const V3& sxx_safe,
                                                                const V4& r_star, double a_star, double mu_star,
                                                                double c2, double rss_min, std::ostream* pstream__) {
  using stan::math::value_of;
  (void)sxx_safe;  // (the pure program's; here Sxx > 0 is tested per group)
  double g[4];
  const double val = hierlin_fused::marginal_kernel(value_of(a), value_of(mu_b), value_of(sigma_b), value_of(eps), N,
                                                    sum_x, sum_xx, r_star, a_star, mu_star, c2, rss_min, g);
  if constexpr (!stan::is_var<hierlin_fused::ret_t<TA, TM, TS, TE>>::value) {
    return val;
  } else {
    return stan::math::make_callback_var(
        val, [a, mu_b, sigma_b, eps, g0 = g[0], g1 = g[1], g2 = g[2], g3 = g[3]](auto& vi) {
          hierlin_fused::push_adj(a, vi.adj(), g0);
          hierlin_fused::push_adj(mu_b, vi.adj(), g1);
          hierlin_fused::push_adj(sigma_b, vi.adj(), g2);
          hierlin_fused::push_adj(eps, vi.adj(), g3);
        });
  }
}

// real hierlin_collapsed_ll(real sigma_b, real eps, int N, data vector sx, data vector sxx, data vector r,
//   data vector sx2_sxx, data vector sxr_sxx, data real c2, data real rss_min, data real va, data real vm,
//   data real g01, data real g02)
template <typename TS, typename TE, typename V1, typename V2, typename V3, typename V4, typename V5>
inline hierlin_fused::ret_t<TS, TE> hierlin_collapsed_ll(const TS& sigma_b, const TE& eps, int N, const V1& sx,
                                                         const V2& sxx, const V3& r, const V4& sx2_sxx,
                                                         const V5& sxr_sxx, double c2, double rss_min, double va,
                                                         double vm, double g01, double g02,
                                                         std::ostream* pstream__) {
  using stan::math::value_of;
  (void)sx2_sxx;  // (the pure program's precomputed products)
  (void)sxr_sxx;
  double g[2];
  const double val = hierlin_fused::collapsed_kernel(value_of(sigma_b), value_of(eps), N, sx, sxx, r, c2, rss_min,
                                                     va, vm, g01, g02, g);
  if constexpr (!stan::is_var<hierlin_fused::ret_t<TS, TE>>::value) {
    return val;
  } else {
    return stan::math::make_callback_var(val, [sigma_b, eps, g0 = g[0], g1 = g[1]](auto& vi) {
      hierlin_fused::push_adj(sigma_b, vi.adj(), g0);
      hierlin_fused::push_adj(eps, vi.adj(), g1);
    });
  }
}

// vector hierlin_collapsed_beta(data real sigma_b, data real eps, data vector sx, data vector sxx,
//   data vector r, data vector sx2_sxx, data vector sxr_sxx, data real c2, data real va, data real vm,
//   data real g01, data real g02)  ->  [L11, L21, L22, m1, m2]' (P = L L', m = P^-1 g); one pass.
template <typename V1, typename V2, typename V3, typename V4, typename V5>
inline Eigen::VectorXd hierlin_collapsed_beta(double sigma_b, double eps, const V1& sx, const V2& sxx, const V3& r,
                                              const V4& sx2_sxx, const V5& sxr_sxx, double c2, double va, double vm,
                                              double g01, double g02, std::ostream* pstream__) {
  (void)sx2_sxx;
  (void)sxr_sxx;
  const auto B = hierlin_fused::collapsed_beta(eps * eps, sigma_b * sigma_b, sx, sxx, r, c2, va, vm, g01, g02,
                                               nullptr);
  Eigen::VectorXd out(5);
  out << B.L11, B.L21, B.L22, B.m1, B.m2;
  return out;
}
#endif
