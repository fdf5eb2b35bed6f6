// General hierarchical linear model, centered group effects:
//   u_j ~ MVN(0, Sigma) (Cholesky factor diag(tau) L_Omega), y ~ normal(X beta + rowsum(Z .* u[g]), sigma).
functions {
#include glm_functions.stan
}
data {
#include glm_rows_data.stan
#include glm_priors_data.stan
}
transformed data {
#include glm_priors_transformed.stan
}
parameters {
  vector[p] beta;
#include glm_scale_parameters.stan
  matrix[J, q] u;
}
model {
  matrix[q, q] L = glm_sigma_factor(tau, L_Omega, correlated);
  target += normal_lpdf(beta | beta_loc, beta_scale);
#include glm_scale_priors_model.stan
  for (j in 1:(q > 0 ? J : 0)) {
    target += multi_normal_cholesky_lpdf(u[j]' | rep_vector(0, q), L);
  }
  target += normal_lpdf(y | X * beta + rows_dot_product(Z, u[g]), sigma);
}
generated quantities {
#include glm_omega_gq.stan
}
