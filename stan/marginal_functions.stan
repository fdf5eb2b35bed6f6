  // log p(y | a, mu_b, sigma_b, eps), the slopes integrated out. With d_j = eps^2 + sigma_b^2 Sxx_j:
  //   -2 log p = N log 2pi + (N - J) log eps^2 + sum_j log d_j
  //              + (rss_min + c2 (a - a*)^2) / eps^2 + sum_j Sxr_j^2 / (Sxx_j d_j).
  // (marginal_fused.stan: the same function in C++, hierlin_fused.hpp.)
  real hierlin_marginal_ll(real a, real mu_b, real sigma_b, real eps, int N, data vector sum_x,
                           data vector sum_xx, data vector sxx_safe, data vector r_star, data real a_star,
                           data real mu_star, data real c2, data real rss_min) {
    int J = rows(sum_x);
    real eps2 = square(eps);
    vector[J] d = eps2 + square(sigma_b) * sum_xx;
    vector[J] sxr = r_star - (a - a_star) * sum_x - (mu_b - mu_star) * sum_xx;
    return -0.5 * (N * log(2 * pi()) + (N - J) * log(eps2) + sum(log(d))
                   + (rss_min + c2 * square(a - a_star)) / eps2 + sum(square(sxr) ./ (sxx_safe .* d)));
  }
