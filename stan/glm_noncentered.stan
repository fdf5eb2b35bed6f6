// General hierarchical linear model, non-centered group effects:
//   z_j ~ N(0, I), u_j = diag(tau) L_Omega z_j, y ~ normal(X beta + rowsum(Z .* u[g]), sigma).
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
  matrix[J, q] z;
}
transformed parameters {
  matrix[J, q] u = z * glm_sigma_factor(tau, L_Omega, correlated)';
}
model {
  target += normal_lpdf(beta | beta_loc, beta_scale);
#include glm_scale_priors_model.stan
  target += std_normal_lpdf(to_vector(z));
  target += normal_lpdf(y | X * beta + rows_dot_product(Z, u[g]), sigma);
}
generated quantities {
#include glm_omega_gq.stan
}
