// Fused value-and-gradient kernels of hierlin_stan's marginal and collapsed densities
// (CmdStan only: a user C++ header, compiled with stanc --allow-undefined).
//
// The *_fused.stan programs declare these functions without a body; their pure twins
// (marginal.stan, collapsed.stan: the notebook's model) define the same functions, with the
// same signatures, in Stan. Tests hold both equal (value and gradient, 1e-10 relative).
// The formula programs glm_marginal_fused.stan / glm_collapsed_fused.stan declare
// hierlin_glm_marginal_ll / hierlin_glm_collapsed_ll (one or two group terms, vectorised) and
// hierlin_glm_*_loop_ll (any other number, group by group); their pure twins define them in
// glm_pure_functions.stan.
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


// ================================================================= the general model (formulas)
// One or two group terms (q = 1, 2), p common terms, over the per-group blocks of glm_vector_data.stan:
// A_j = s2 I + M_j Sigma M_j' with, for q = 2, A11 = s2 + b11, A12 = a12, A22 = s2 + b22
// (b11 = MA11_j . svec, a12 = MA12_j . svec, b22 = MA22_j . svec, svec = [S11, S12, S22]) and
// det A_j = s2 (s2 + b11 + b22) + detM2_j det(Sigma) (a sum of non-negative terms), A^-1 = adj(A) / det;
// for q = 1, A_j = s2 + m2_j svec[0]. Every f_j below depends on the parameters through A_j and d_j,
// and for a symmetric W_j (W = d d' for the marginal, F V F' + r r' for the collapsed, see there)
//   d f_j = d det (1/det - <adj, W>/det^2) + (W22 dA11 - 2 W12 dA12 + W11 dA22) / det,
// which glm_block_grad accumulates as d/d s2, d/d svec and d/d det(Sigma).
using MapM = Eigen::Map<const Eigen::MatrixXd>;
using MapV = Eigen::Map<const Eigen::VectorXd>;
template <typename T>
inline MapM as_mat(const T& x) { return MapM(x.data(), x.rows(), x.cols()); }
template <typename T>
inline MapV as_vec(const T& x) { return MapV(x.data(), x.size()); }

struct GlmBlocks {
  int q;
  Eigen::Index J, p;
  MapV m2, e1, e2;
  MapM F1, F2, MA11, MA12, MA22;
  MapV detM2;
};

// sum_j log d_j: the fast mantissa product when every d_j is a positive normal double, else std::log
inline double sum_log(const Eigen::VectorXd& d) {
  const Eigen::Index n = d.size();
  if (n == 0) return 0.0;
  if (d.minCoeff() >= DMIN && d.maxCoeff() < DMAX) {
    LogSum<true> ls;
    for (Eigen::Index j = 0; j < n; ++j) ls.add(d[j]);
    return ls.value();
  }
  double out = 0;
  for (Eigen::Index j = 0; j < n; ++j) out += std::log(d[j]);
  return out;
}

// Per-group A: for q = 1, a_j (det) and 1/a_j; for q = 2 also b11, a12, b22 (J x 3 in bs).
struct GlmA {
  Eigen::VectorXd det, inv;
  Eigen::MatrixXd bs;  // columns b11, a12, b22 (q = 2)
};

inline GlmA glm_a(const GlmBlocks& D, const Eigen::VectorXd& sv, double sdet, double s2) {
  GlmA A;
  if (D.q == 1) {
    A.det = ((D.m2 * sv[0]).array() + s2).matrix();
  } else {
    A.bs.resize(D.J, 3);
    A.bs.col(0) = D.MA11 * sv;
    A.bs.col(1) = D.MA12 * sv;
    A.bs.col(2) = D.MA22 * sv;
    A.det = (s2 * (s2 + A.bs.col(0).array() + A.bs.col(2).array()) + D.detM2.array() * sdet).matrix();
  }
  A.inv = A.det.cwiseInverse();
  return A;
}

// Gradient of sum_j f_j (see above) with W_j = [W11, W12, W22]: adds d/d s2 to gs2, d/d svec to gsv
// and d/d det(Sigma) to gsdet.
inline void glm_block_grad(const GlmBlocks& D, const GlmA& A, double s2, const Eigen::VectorXd& W11,
                           const Eigen::VectorXd& W12, const Eigen::VectorXd& W22, double& gs2,
                           Eigen::VectorXd& gsv, double& gsdet) {
  const Eigen::Index J = D.J;
  if (D.q == 1) {
    double t0 = 0, t1 = 0;
    for (Eigen::Index j = 0; j < J; ++j) {
      const double i = A.inv[j];
      const double k = i * (1 - W11[j] * i);  // 1/a - W/a^2
      t0 += k;
      t1 += k * D.m2[j];
    }
    gs2 += t0;
    gsv[0] += t1;
    return;
  }
  double t0 = 0, td = 0, g0 = 0, g1 = 0, g2 = 0;
  for (Eigen::Index j = 0; j < J; ++j) {
    const double i = A.inv[j];
    const double b11 = A.bs(j, 0), a12 = A.bs(j, 1), b22 = A.bs(j, 2);
    const double w11 = W11[j], w12 = W12[j], w22 = W22[j];
    const double c = (s2 + b22) * w11 - 2 * a12 * w12 + (s2 + b11) * w22;  // <adj A, W>
    const double k = i * (1 - c * i);                                        // 1/det - c/det^2
    t0 += k * (2 * s2 + b11 + b22) + (w11 + w22) * i;
    td += k * D.detM2[j];
    const double c11 = k * s2 + w22 * i, c12 = -2 * w12 * i, c22 = k * s2 + w11 * i;
    g0 += c11 * D.MA11(j, 0) + c12 * D.MA12(j, 0) + c22 * D.MA22(j, 0);
    g1 += c11 * D.MA11(j, 1) + c12 * D.MA12(j, 1) + c22 * D.MA22(j, 1);
    g2 += c11 * D.MA11(j, 2) + c12 * D.MA12(j, 2) + c22 * D.MA22(j, 2);
  }
  gs2 += t0;
  gsdet += td;
  gsv[0] += g0;
  gsv[1] += g1;
  gsv[2] += g2;
}

// Marginal: -2 log p = N log 2pi + (N - J q) log s2 + sum_j [log det A_j + d_j' A_j^-1 d_j]
//                      + (rss_min + delta' C2 delta) / s2,  d_j = e*_j - F_j delta,  delta = beta - beta*.
// Value; gradient in gb (beta), gsv (svec), gsdet, gsig (sigma).
inline double glm_marginal_kernel(const GlmBlocks& D, const Eigen::VectorXd& beta, const Eigen::VectorXd& sv,
                                  double sdet, double sigma, int N, const MapM& C2, const MapV& beta_star,
                                  double rss_min, Eigen::VectorXd& gb, Eigen::VectorXd& gsv, double& gsdet,
                                  double& gsig) {
  const double s2 = sigma * sigma;
  const Eigen::VectorXd delta = beta - beta_star;
  const GlmA A = glm_a(D, sv, sdet, s2);
  const Eigen::VectorXd d1 = D.e1 - D.F1 * delta;
  Eigen::VectorXd v1, v2, W11, W12, W22;
  double quad;
  if (D.q == 1) {
    v1 = d1.cwiseProduct(A.inv);       // A^-1 d
    quad = d1.dot(v1);
    W11 = d1.cwiseAbs2();
  } else {
    const Eigen::VectorXd d2 = D.e2 - D.F2 * delta;
    const Eigen::ArrayXd a11 = A.bs.col(0).array() + s2, a12 = A.bs.col(1).array(), a22 = A.bs.col(2).array() + s2;
    v1 = ((a22 * d1.array() - a12 * d2.array()) * A.inv.array()).matrix();
    v2 = ((a11 * d2.array() - a12 * d1.array()) * A.inv.array()).matrix();
    quad = d1.dot(v1) + d2.dot(v2);
    W11 = d1.cwiseAbs2();
    W12 = d1.cwiseProduct(d2);
    W22 = d2.cwiseAbs2();
  }
  const Eigen::VectorXd C2d = C2 * delta;
  const double rss = rss_min + delta.dot(C2d);
  const double val = -0.5 * (N * LOG_2PI + (N - D.J * D.q) * std::log(s2) + sum_log(A.det) + rss / s2 + quad);
  double gs2 = 0;
  gsv = Eigen::VectorXd::Zero(sv.size());
  gsdet = 0;
  glm_block_grad(D, A, s2, W11, W12, W22, gs2, gsv, gsdet);
  gb = D.F1.transpose() * v1 - C2d / s2;
  if (D.q == 2) gb += D.F2.transpose() * v2;
  gsig = -sigma * ((N - D.J * D.q) / s2 - rss / (s2 * s2) + gs2);
  gsv *= -0.5;
  gsdet *= -0.5;
  return val;
}

// Collapsed: beta ~ N(beta_loc, diag(beta_scale^2)) integrated out as well. With P = C2/s2 + diag(beta_scale^-2)
// + sum_j F_j' A_j^-1 F_j, g = (beta_loc - beta*)/beta_scale^2 + sum_j F_j' A_j^-1 e*_j, m = P^-1 g, V = P^-1:
//   -2 log p = N log 2pi + (N - J q) log s2 + 2 sum log beta_scale + sum_j log det A_j + log det P
//              + rss_min/s2 + Q(m),
//   Q(m) = sum_j r_j' A_j^-1 r_j + m' C2 m / s2 + |(m - (beta_loc - beta*)) / beta_scale|^2,  r_j = e*_j - F_j m,
// Q(m) summed term by term (non-negative terms; m minimises Q, so an error in m enters quadratically).
// Envelope theorem: the gradient is that of f_j with W_j = F_j V F_j' + r_j r_j', plus the s2 terms of
// C2/s2 in P and in Q. Throws (reject) when P is not finite and positive definite.
struct GlmCollapsedPass1 {
  GlmA A;
  Eigen::LLT<Eigen::MatrixXd> llt;
  Eigen::VectorXd m;
};

inline GlmCollapsedPass1 glm_collapsed_pass1(const GlmBlocks& D, const Eigen::VectorXd& sv, double sdet, double s2,
                                             const MapM& C2, const MapV& beta_star, const MapV& beta_loc,
                                             const MapV& beta_scale) {
  GlmCollapsedPass1 out;
  out.A = glm_a(D, sv, sdet, s2);
  const GlmA& A = out.A;
  const Eigen::VectorXd prec = beta_scale.cwiseAbs2().cwiseInverse();
  Eigen::MatrixXd P = C2 / s2;
  P.diagonal() += prec;
  Eigen::VectorXd g = (beta_loc - beta_star).cwiseProduct(prec);
  if (D.q == 1) {
    const Eigen::MatrixXd G1 = D.F1.array().colwise() * A.inv.array();
    P.noalias() += D.F1.transpose() * G1;
    g.noalias() += G1.transpose() * D.e1;
  } else {
    const Eigen::ArrayXd i11 = (A.bs.col(2).array() + s2) * A.inv.array();
    const Eigen::ArrayXd i12 = -A.bs.col(1).array() * A.inv.array();
    const Eigen::ArrayXd i22 = (A.bs.col(0).array() + s2) * A.inv.array();
    const Eigen::MatrixXd G1 = (D.F1.array().colwise() * i11 + D.F2.array().colwise() * i12).matrix();
    const Eigen::MatrixXd G2 = (D.F1.array().colwise() * i12 + D.F2.array().colwise() * i22).matrix();
    P.noalias() += D.F1.transpose() * G1;
    P.noalias() += D.F2.transpose() * G2;
    g.noalias() += G1.transpose() * D.e1;
    g.noalias() += G2.transpose() * D.e2;
  }
  if (!P.allFinite()) reject("hierlin glm collapsed: P is not finite (tau or sigma too far out)");
  out.llt.compute(P);
  if (out.llt.info() != Eigen::Success || !(out.llt.matrixLLT().diagonal().array() > 0).all())
    reject("hierlin glm collapsed: P is not positive definite");
  out.m = out.llt.solve(g);
  return out;
}

inline double glm_collapsed_kernel(const GlmBlocks& D, const Eigen::VectorXd& sv, double sdet, double sigma, int N,
                                   const MapM& C2, const MapV& beta_star, double rss_min, const MapV& beta_loc,
                                   const MapV& beta_scale, Eigen::VectorXd& gsv, double& gsdet, double& gsig) {
  const double s2 = sigma * sigma;
  const Eigen::Index p = D.p;
  const GlmCollapsedPass1 S = glm_collapsed_pass1(D, sv, sdet, s2, C2, beta_star, beta_loc, beta_scale);
  const GlmA& A = S.A;
  const Eigen::VectorXd& m = S.m;
  const Eigen::MatrixXd V = S.llt.solve(Eigen::MatrixXd::Identity(p, p));
  const double logdetP = 2 * S.llt.matrixLLT().diagonal().array().log().sum();
  const Eigen::VectorXd r1 = D.e1 - D.F1 * m;
  const Eigen::MatrixXd U1 = D.F1 * V;
  Eigen::VectorXd W11 = (U1.array() * D.F1.array()).rowwise().sum().matrix() + r1.cwiseAbs2();
  Eigen::VectorXd W12, W22;
  double Q;
  if (D.q == 1) {
    Q = r1.cwiseAbs2().dot(A.inv);
  } else {
    const Eigen::VectorXd r2 = D.e2 - D.F2 * m;
    W12 = (U1.array() * D.F2.array()).rowwise().sum().matrix() + r1.cwiseProduct(r2);
    W22 = ((D.F2 * V).array() * D.F2.array()).rowwise().sum().matrix() + r2.cwiseAbs2();
    const Eigen::ArrayXd a11 = A.bs.col(0).array() + s2, a12 = A.bs.col(1).array(), a22 = A.bs.col(2).array() + s2;
    const Eigen::ArrayXd r1a = r1.array(), r2a = r2.array();
    Q = ((a22 * r1a.square() - 2 * a12 * r1a * r2a + a11 * r2a.square()) * A.inv.array()).sum();
  }
  const Eigen::VectorXd C2m = C2 * m;
  const double mC2m = m.dot(C2m);
  Q += mC2m / s2 + ((m - (beta_loc - beta_star)).array() / beta_scale.array()).square().sum();
  const double val = -0.5 * (N * LOG_2PI + (N - D.J * D.q) * std::log(s2)
                             + 2 * beta_scale.array().log().sum() + sum_log(A.det) + logdetP + rss_min / s2 + Q);
  double gs2 = 0;
  gsv = Eigen::VectorXd::Zero(sv.size());
  gsdet = 0;
  glm_block_grad(D, A, s2, W11, W12, W22, gs2, gsv, gsdet);
  const double trVC2 = (V.array() * C2.array()).sum();
  gsig = -sigma * ((N - D.J * D.q) / s2 - (rss_min + trVC2 + mC2m) / (s2 * s2) + gs2);
  gsv *= -0.5;
  gsdet *= -0.5;
  return val;
}

// ---------------------------------------------------- the general model, any number of group terms
// The block form, one group at a time (glm_loop_functions.stan): A_j = s2 I + B B', B = M_j L with Sigma = L L'
// (L: glm_sigma_factor, q x q). With G_j = A_j^-1 - A_j^-1 W_j A_j^-1 (W_j as above) the gradient is
//   d/d s2 = sum_j tr G_j (+ the s2 terms outside the groups),  d/d L = 2 (sum_j M_j' G_j M_j) L
// (L treated as a general matrix, as Stan's autodiff of M_j * L treats it). Used for three or more group
// terms and for none (q = 0); one and two run the vectorised kernels above.
template <typename AM, typename AE, typename AF>
inline double glm_marginal_loop_kernel(const AM& M, const AE& E, const AF& F, const Eigen::VectorXd& beta,
                                       const Eigen::MatrixXd& L, double sigma, int N, const MapM& C2,
                                       const MapV& beta_star, double rss_min, Eigen::VectorXd& gb,
                                       Eigen::MatrixXd& gL, double& gsig) {
  const Eigen::Index J = static_cast<Eigen::Index>(M.size()), q = L.cols(), p = beta.size();
  const double s2 = sigma * sigma;
  const Eigen::VectorXd delta = beta - beta_star;
  const Eigen::MatrixXd I = Eigen::MatrixXd::Identity(q, q);
  Eigen::MatrixXd H = Eigen::MatrixXd::Zero(q, q);
  gb = Eigen::VectorXd::Zero(p);
  double logdet = 0, quad = 0, trG = 0;
  for (Eigen::Index j = 0; j < (q > 0 ? J : 0); ++j) {
    const Eigen::MatrixXd B = M[j] * L;
    Eigen::MatrixXd A = B * B.transpose();
    A.diagonal().array() += s2;
    const Eigen::LLT<Eigen::MatrixXd> llt(A);
    if (llt.info() != Eigen::Success) reject("hierlin glm marginal: A_j is not positive definite");
    const Eigen::VectorXd d = E[j] - F[j] * delta;
    const Eigen::VectorXd v = llt.solve(d);
    logdet += 2 * llt.matrixLLT().diagonal().array().log().sum();
    quad += d.dot(v);
    const Eigen::MatrixXd G = llt.solve(I) - v * v.transpose();
    trG += G.trace();
    H.noalias() += M[j].transpose() * G * M[j];
    gb.noalias() += F[j].transpose() * v;
  }
  const Eigen::VectorXd C2d = C2 * delta;
  const double rss = rss_min + delta.dot(C2d);
  const double val = -0.5 * (N * LOG_2PI + (N - J * q) * std::log(s2) + logdet + quad + rss / s2);
  gb -= C2d / s2;
  gsig = -sigma * ((N - J * q) / s2 - rss / (s2 * s2) + trG);
  gL = -H * L;
  return val;
}

template <typename AM, typename AE, typename AF>
inline double glm_collapsed_loop_kernel(const AM& M, const AE& E, const AF& F, const Eigen::MatrixXd& L,
                                        double sigma, int N, const MapM& C2, const MapV& beta_star, double rss_min,
                                        const MapV& beta_loc, const MapV& beta_scale, Eigen::MatrixXd& gL,
                                        double& gsig) {
  const Eigen::Index J = static_cast<Eigen::Index>(M.size()), q = L.cols(), p = beta_star.size();
  const Eigen::Index groups = q > 0 ? J : 0;
  const double s2 = sigma * sigma;
  const Eigen::MatrixXd I = Eigen::MatrixXd::Identity(q, q);
  const Eigen::VectorXd prec = beta_scale.cwiseAbs2().cwiseInverse();
  Eigen::MatrixXd P = C2 / s2;
  P.diagonal() += prec;
  Eigen::VectorXd g = (beta_loc - beta_star).cwiseProduct(prec);
  std::vector<Eigen::MatrixXd> Ainv(groups);
  double logdetA = 0;
  for (Eigen::Index j = 0; j < groups; ++j) {
    const Eigen::MatrixXd B = M[j] * L;
    Eigen::MatrixXd A = B * B.transpose();
    A.diagonal().array() += s2;
    const Eigen::LLT<Eigen::MatrixXd> llt(A);
    if (llt.info() != Eigen::Success) reject("hierlin glm collapsed: A_j is not positive definite");
    logdetA += 2 * llt.matrixLLT().diagonal().array().log().sum();
    Ainv[j] = llt.solve(I);
    const Eigen::MatrixXd AF_j = Ainv[j] * F[j];
    P.noalias() += F[j].transpose() * AF_j;
    g.noalias() += AF_j.transpose() * E[j];
  }
  if (!P.allFinite()) reject("hierlin glm collapsed: P is not finite (tau or sigma too far out)");
  const Eigen::LLT<Eigen::MatrixXd> lltP(P);
  if (lltP.info() != Eigen::Success || !(lltP.matrixLLT().diagonal().array() > 0).all())
    reject("hierlin glm collapsed: P is not positive definite");
  const Eigen::VectorXd m = lltP.solve(g);
  const Eigen::MatrixXd V = lltP.solve(Eigen::MatrixXd::Identity(p, p));
  const double logdetP = 2 * lltP.matrixLLT().diagonal().array().log().sum();
  Eigen::MatrixXd H = Eigen::MatrixXd::Zero(q, q);
  double Q = 0, trG = 0;
  for (Eigen::Index j = 0; j < groups; ++j) {
    const Eigen::VectorXd r = E[j] - F[j] * m;
    const Eigen::VectorXd ar = Ainv[j] * r;
    const Eigen::MatrixXd AF_j = Ainv[j] * F[j];
    Q += r.dot(ar);
    const Eigen::MatrixXd G = Ainv[j] - AF_j * V * AF_j.transpose() - ar * ar.transpose();
    trG += G.trace();
    H.noalias() += M[j].transpose() * G * M[j];
  }
  const Eigen::VectorXd C2m = C2 * m;
  const double mC2m = m.dot(C2m);
  Q += mC2m / s2 + ((m - (beta_loc - beta_star)).array() / beta_scale.array()).square().sum();
  const double val = -0.5 * (N * LOG_2PI + (N - J * q) * std::log(s2) + 2 * beta_scale.array().log().sum()
                             + logdetA + logdetP + rss_min / s2 + Q);
  const double trVC2 = (V.array() * C2.array()).sum();
  gsig = -sigma * ((N - J * q) / s2 - (rss_min + trVC2 + mC2m) / (s2 * s2) + trG);
  gL = -H * L;
  return val;
}

template <typename T, typename G>
inline void add_adj(T& x, double adj, const G& g) {
  if constexpr (stan::is_var<stan::value_type_t<T>>::value) {
    for (Eigen::Index k = 0; k < g.size(); ++k) x.coeffRef(k).vi_->adj_ += adj * g.coeff(k);
  }
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
// real hierlin_glm_marginal_ll(vector beta, vector svec, real sdet, real sigma, int N, data vector m2,
//   data vector e1, data vector e2, data matrix F1, data matrix F2, data matrix MA11, data matrix MA12,
//   data matrix MA22, data vector detM2, data matrix C2, data vector beta_star, data real rss_min)
template <typename TB, typename TV, typename TD, typename TS, typename V1, typename V2, typename V3, typename M1,
          typename M2, typename M3, typename M4, typename M5, typename V4, typename M6, typename V5>
inline hierlin_fused::ret_t<TB, TV, TD, TS> hierlin_glm_marginal_ll(
    const TB& beta, const TV& svec, const TD& sdet, const TS& sigma, int N, const V1& m2, const V2& e1, const V3& e2,
    const M1& F1, const M2& F2, const M3& MA11, const M4& MA12, const M5& MA22, const V4& detM2, const M6& C2,
    const V5& beta_star, double rss_min, std::ostream* pstream__) {
  using namespace hierlin_fused;
  using stan::math::value_of;
  const Eigen::VectorXd b = value_of(beta), sv = value_of(svec);
  const int q = sv.size() == 1 ? 1 : 2;
  const GlmBlocks D{q, e1.size(), b.size(), as_vec(m2), as_vec(e1), as_vec(e2), as_mat(F1), as_mat(F2),
                    as_mat(MA11), as_mat(MA12), as_mat(MA22), as_vec(detM2)};
  Eigen::VectorXd gb, gsv;
  double gsdet, gsig;
  const double val = glm_marginal_kernel(D, b, sv, value_of(sdet), value_of(sigma), N, as_mat(C2), as_vec(beta_star),
                                         rss_min, gb, gsv, gsdet, gsig);
  if constexpr (!stan::is_var<ret_t<TB, TV, TD, TS>>::value) {
    return val;
  } else {
    stan::arena_t<TB> ab = beta;
    stan::arena_t<TV> asv = svec;
    stan::arena_t<Eigen::VectorXd> agb = gb, agsv = gsv;
    return stan::math::make_callback_var(val, [ab, asv, sdet, sigma, agb, agsv, gsdet, gsig](auto& vi) mutable {
      const double adj = vi.adj();
      add_adj(ab, adj, agb);
      add_adj(asv, adj, agsv);
      push_adj(sdet, adj, gsdet);
      push_adj(sigma, adj, gsig);
    });
  }
}

// real hierlin_glm_collapsed_ll(vector svec, real sdet, real sigma, int N, data vector m2, data vector e1,
//   data vector e2, data matrix F1, data matrix F2, data matrix MA11, data matrix MA12, data matrix MA22,
//   data vector detM2, data matrix FF1, data matrix FF2, data matrix FF3, data matrix FE1, data matrix FE2,
//   data matrix FE3, data vector EE1, data vector EE2, data vector EE3, data matrix C2, data vector beta_star,
//   data real rss_min, data vector beta_loc, data vector beta_scale)   (FF*, FE*, EE*: the pure twin's products)
template <typename TV, typename TD, typename TS, typename V1, typename V2, typename V3, typename M1, typename M2,
          typename M3, typename M4, typename M5, typename V4, typename X1, typename X2, typename X3, typename X4,
          typename X5, typename X6, typename X7, typename X8, typename X9, typename M6, typename V5, typename V6,
          typename V7>
inline hierlin_fused::ret_t<TV, TD, TS> hierlin_glm_collapsed_ll(
    const TV& svec, const TD& sdet, const TS& sigma, int N, const V1& m2, const V2& e1, const V3& e2, const M1& F1,
    const M2& F2, const M3& MA11, const M4& MA12, const M5& MA22, const V4& detM2, const X1&, const X2&, const X3&,
    const X4&, const X5&, const X6&, const X7&, const X8&, const X9&, const M6& C2, const V5& beta_star,
    double rss_min, const V6& beta_loc, const V7& beta_scale, std::ostream* pstream__) {
  using namespace hierlin_fused;
  using stan::math::value_of;
  const Eigen::VectorXd sv = value_of(svec);
  const int q = sv.size() == 1 ? 1 : 2;
  const GlmBlocks D{q, e1.size(), beta_star.size(), as_vec(m2), as_vec(e1), as_vec(e2), as_mat(F1), as_mat(F2),
                    as_mat(MA11), as_mat(MA12), as_mat(MA22), as_vec(detM2)};
  Eigen::VectorXd gsv;
  double gsdet, gsig;
  const double val = glm_collapsed_kernel(D, sv, value_of(sdet), value_of(sigma), N, as_mat(C2), as_vec(beta_star),
                                          rss_min, as_vec(beta_loc), as_vec(beta_scale), gsv, gsdet, gsig);
  if constexpr (!stan::is_var<ret_t<TV, TD, TS>>::value) {
    return val;
  } else {
    stan::arena_t<TV> asv = svec;
    stan::arena_t<Eigen::VectorXd> agsv = gsv;
    return stan::math::make_callback_var(val, [asv, sdet, sigma, agsv, gsdet, gsig](auto& vi) mutable {
      const double adj = vi.adj();
      add_adj(asv, adj, agsv);
      push_adj(sdet, adj, gsdet);
      push_adj(sigma, adj, gsig);
    });
  }
}
// real hierlin_glm_marginal_loop_ll(vector beta, matrix L, real sigma, int N, data array[] matrix M,
//   data array[] vector e_star, data array[] matrix F, data matrix C2, data vector beta_star, data real rss_min)
template <typename TB, typename TL, typename TS, typename AM, typename AE, typename AF, typename M6, typename V5>
inline hierlin_fused::ret_t<TB, TL, TS> hierlin_glm_marginal_loop_ll(const TB& beta, const TL& L, const TS& sigma,
                                                                     int N, const AM& M, const AE& e_star,
                                                                     const AF& F, const M6& C2, const V5& beta_star,
                                                                     double rss_min, std::ostream* pstream__) {
  using namespace hierlin_fused;
  using stan::math::value_of;
  const Eigen::VectorXd b = value_of(beta);
  const Eigen::MatrixXd l = value_of(L);
  Eigen::VectorXd gb;
  Eigen::MatrixXd gL;
  double gsig;
  const double val = glm_marginal_loop_kernel(M, e_star, F, b, l, value_of(sigma), N, as_mat(C2), as_vec(beta_star),
                                              rss_min, gb, gL, gsig);
  if constexpr (!stan::is_var<ret_t<TB, TL, TS>>::value) {
    return val;
  } else {
    stan::arena_t<TB> ab = beta;
    stan::arena_t<TL> aL = L;
    stan::arena_t<Eigen::VectorXd> agb = gb;
    stan::arena_t<Eigen::MatrixXd> agL = gL;
    return stan::math::make_callback_var(val, [ab, aL, sigma, agb, agL, gsig](auto& vi) mutable {
      const double adj = vi.adj();
      add_adj(ab, adj, agb);
      add_adj(aL, adj, agL);
      push_adj(sigma, adj, gsig);
    });
  }
}

// real hierlin_glm_collapsed_loop_ll(matrix L, real sigma, int N, data array[] matrix M, data array[] vector e_star,
//   data array[] matrix F, data matrix C2, data vector beta_star, data real rss_min, data vector beta_loc,
//   data vector beta_scale)
template <typename TL, typename TS, typename AM, typename AE, typename AF, typename M6, typename V5, typename V6,
          typename V7>
inline hierlin_fused::ret_t<TL, TS> hierlin_glm_collapsed_loop_ll(const TL& L, const TS& sigma, int N, const AM& M,
                                                                  const AE& e_star, const AF& F, const M6& C2,
                                                                  const V5& beta_star, double rss_min,
                                                                  const V6& beta_loc, const V7& beta_scale,
                                                                  std::ostream* pstream__) {
  using namespace hierlin_fused;
  using stan::math::value_of;
  const Eigen::MatrixXd l = value_of(L);
  Eigen::MatrixXd gL;
  double gsig;
  const double val = glm_collapsed_loop_kernel(M, e_star, F, l, value_of(sigma), N, as_mat(C2), as_vec(beta_star),
                                               rss_min, as_vec(beta_loc), as_vec(beta_scale), gL, gsig);
  if constexpr (!stan::is_var<ret_t<TL, TS>>::value) {
    return val;
  } else {
    stan::arena_t<TL> aL = L;
    stan::arena_t<Eigen::MatrixXd> agL = gL;
    return stan::math::make_callback_var(val, [aL, sigma, agL, gsig](auto& vi) mutable {
      const double adj = vi.adj();
      add_adj(aL, adj, agL);
      push_adj(sigma, adj, gsig);
    });
  }
}
#endif
