data {
  int<lower=0> N;
  int<lower=0> p;
  int<lower=0> q;
  int<lower=1> J;
  int<lower=0, upper=1> correlated;
#include glm_group_data.stan
#include glm_priors_data.stan
  int<lower=0, upper=1> write_u;
}
transformed data {
#include glm_priors_transformed.stan
#include glm_vector_data.stan
}
parameters {
  vector[p] beta;
#include glm_scale_parameters.stan
}
model {
  target += normal_lpdf(beta | beta_loc, beta_scale);
#include glm_scale_priors_model.stan
  if (q == 1 || q == 2) {
    target += hierlin_glm_marginal_ll(beta, glm_svec(tau, L_Omega, correlated), glm_sdet(tau, L_Omega, correlated),
                                      sigma, N, m2, e1, e2, F1, F2, MA11, MA12, MA22, detM2, C2, beta_star,
                                      rss_min);
  } else {
    target += hierlin_glm_marginal_loop_ll(beta, glm_sigma_factor(tau, L_Omega, correlated), sigma, N, M, e_star,
                                           F, C2, beta_star, rss_min);
  }
}
generated quantities {
#include glm_omega_gq.stan
  matrix[write_u ? J : 0, q] u;
  if (write_u && q > 0) {
    matrix[q, q] L = glm_sigma_factor(tau, L_Omega, correlated);
    if (q <= 2) {
      u = glm_draw_u_vec_rng(beta, L, sigma, mv11, mv12, mv21, mv22, detM2, e1, e2, F1, F2, beta_star);
    } else {
      u = glm_draw_u_rng(beta, L, sigma, M, e_star, F, beta_star);
    }
  }
}
