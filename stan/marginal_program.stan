data {
#include marginal_data.stan
}
transformed data {
  int N = sum(n_group);
  // Groups whose x are all 0 carry no information on b: Sxx = 0 (and Sxr = 0); divide by 1.
  vector[J] sxx_safe;
  for (j in 1:J) {
    sxx_safe[j] = sum_xx[j] > 0 ? sum_xx[j] : 1;
  }
  if (write_y_rep && N_rep == 0) {
    reject("write_y_rep = 1 needs the observations to replicate: N_rep > 0, x_rep, g_rep");
  }
}
parameters {
#include hyper_parameters.stan
}
model {
#include priors_model.stan
  target += hierlin_marginal_ll(a, mu_b, sigma_b, eps, N, sum_x, sum_xx, sxx_safe, r_star, a_star, mu_star,
                                c2, rss_min);
}
generated quantities {
  vector[write_b || write_y_rep ? J : 0] b;
  vector[write_y_rep ? N_rep : 0] y_rep;
  if (write_b || write_y_rep) {
    // Conditional posterior of b_j, written stably for eps -> 0:
    // b_j ~ N(mu_b + sigma_b^2 Sxr_j / d_j, sigma_b eps / sqrt(d_j)), d_j = eps^2 + sigma_b^2 Sxx_j.
    real eps2 = square(eps);
    real sb2 = square(sigma_b);
    vector[J] d = eps2 + sb2 * sum_xx;
    vector[J] sxr = r_star - (a - a_star) * sum_x - (mu_b - mu_star) * sum_xx;
    b = to_vector(normal_rng(mu_b + sb2 * sxr ./ d, sqrt(sb2 * eps2 ./ d)));
  }
  if (write_y_rep) {
    y_rep = to_vector(normal_rng(a + b[g_rep] .* x_rep, eps));
  }
}
