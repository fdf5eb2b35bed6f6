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
#include glm_scale_parameters.stan
}
model {
#include glm_scale_priors_model.stan
  if (q == 1 || q == 2) {
    target += hierlin_glm_collapsed_ll(glm_svec(tau, L_Omega, correlated), glm_sdet(tau, L_Omega, correlated),
                                       sigma, N, m2, e1, e2, F1, F2, MA11, MA12, MA22, detM2, FF1, FF2, FF3,
                                       FE1, FE2, FE3, EE1, EE2, EE3, C2, beta_star, rss_min, beta_loc,
                                       beta_scale);
  } else {
    target += hierlin_glm_collapsed_loop_ll(glm_sigma_factor(tau, L_Omega, correlated), sigma, N, M, e_star, F,
                                            C2, beta_star, rss_min, beta_loc, beta_scale);
  }
}
generated quantities {
#include glm_omega_gq.stan
  vector[p] beta;
  matrix[write_u ? J : 0, q] u;
  {
    matrix[q, q] L = glm_sigma_factor(tau, L_Omega, correlated);
    if (q == 1 || q == 2) {
      beta = glm_draw_beta_vec_rng(glm_svec(tau, L_Omega, correlated), glm_sdet(tau, L_Omega, correlated), sigma,
                                   m2, MA11, MA12, MA22, detM2, FF1, FF2, FF3, FE1, FE2, FE3, EE1, EE2, EE3, C2,
                                   beta_star, beta_loc, beta_scale);
      if (write_u) {
        u = glm_draw_u_vec_rng(beta, L, sigma, mv11, mv12, mv21, mv22, detM2, e1, e2, F1, F2, beta_star);
      }
    } else {
      beta = glm_draw_beta_rng(L, sigma, M, e_star, F, C2, beta_star, beta_loc, beta_scale);
      if (write_u && q > 0) {
        u = glm_draw_u_rng(beta, L, sigma, M, e_star, F, beta_star);
      }
    }
  }
}
