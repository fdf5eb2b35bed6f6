  // Implemented in C++ (hierlin_fused.hpp, a CmdStan user header): value and gradient in one
  // or two passes over the groups. The pure programs define the same functions in Stan
  // (marginal_functions.stan, collapsed_functions.stan); tests hold both equal.
  real hierlin_marginal_ll(real a, real mu_b, real sigma_b, real eps, int N, data vector sum_x,
                           data vector sum_xx, data vector sxx_safe, data vector r_star, data real a_star,
                           data real mu_star, data real c2, data real rss_min);
  real hierlin_collapsed_ll(real sigma_b, real eps, int N, data vector sx, data vector sxx, data vector r,
                            data vector sx2_sxx, data vector sxr_sxx, data real c2, data real rss_min,
                            data real va, data real vm, data real g01, data real g02);
  vector hierlin_collapsed_beta(data real sigma_b, data real eps, data vector sx, data vector sxx,
                                data vector r, data vector sx2_sxx, data vector sxr_sxx, data real c2,
                                data real va, data real vm, data real g01, data real g02);
