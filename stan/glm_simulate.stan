// Simulate from the general hierarchical linear model, run with fixed_param: the Stan twin of
// hierlin_stan.simulate(formula=...). beta, tau, sigma and L_Omega are drawn from the priors
// (fixed = 0) or set (fixed = 1); then u_j ~ MVN(0, Sigma) and y ~ normal(X beta + Z u_g, sigma).
// sigma = 0 (or tau = 0) gives exact values.
functions {
#include glm_functions.stan
}
data {
  int<lower=0> N;
  int<lower=0> p;
  int<lower=0> q;
  int<lower=1> J;
  int<lower=0, upper=1> correlated;
  matrix[N, p] X;
  matrix[N, q] Z;
  array[N] int<lower=1, upper=J> g;
#include glm_priors_data.stan
  int<lower=0, upper=1> fixed;
  vector[p] beta_fixed;
  vector<lower=0>[q] tau_fixed;
  real<lower=0> sigma_fixed;
  cholesky_factor_corr[q] L_Omega_fixed;
}
transformed data {
  int q_corr = (correlated && q > 1) ? q : 0;
}
generated quantities {
  vector[p] beta;
  vector[q] tau;
  real sigma;
  matrix[q_corr, q_corr] Omega;
  matrix[J, q] u;
  vector[N] y;
  {
    matrix[q, q] L_Omega = L_Omega_fixed;
    if (fixed) {
      beta = beta_fixed;
      tau = tau_fixed;
      sigma = sigma_fixed;
    } else {
      beta = to_vector(normal_rng(beta_loc, beta_scale));
      for (k in 1:q) {
        tau[k] = glm_scale_rng(tau_family[k], tau_a[k], tau_b[k]);
      }
      sigma = glm_scale_rng(sigma_family, sigma_a, sigma_b);
      if (q_corr > 1) {
        L_Omega = lkj_corr_cholesky_rng(q, lkj_eta);
      }
    }
    if (q_corr > 0) {
      Omega = multiply_lower_tri_self_transpose(L_Omega);
    }
    matrix[q, q] L = glm_sigma_factor(tau, L_Omega, correlated);
    for (j in 1:J) {
      u[j] = (L * to_vector(normal_rng(rep_vector(0, q), 1)))';
    }
    vector[N] mu = X * beta + rows_dot_product(Z, u[g]);
    for (i in 1:N) {
      y[i] = sigma > 0 ? normal_rng(mu[i], sigma) : mu[i];
    }
  }
}
