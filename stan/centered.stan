// Hierarchical linear regression, centered slopes:
//   y_i ~ normal(a + b[g_i] * x_i, eps),  b_j ~ normal(mu_b, sigma_b).
// Every density is written with target += so the log density is fully
// normalised (the numpy Metropolis target reproduces it term by term).
functions {
#include priors_functions.stan
}
data {
  int<lower=1> N;
  int<lower=1> J;
  vector[N] x;
  vector[N] y;
  array[N] int<lower=1, upper=J> g;
#include priors_data.stan
  int<lower=0, upper=1> write_y_rep;
}
parameters {
#include hyper_parameters.stan
  vector[J] b;
}
model {
#include priors_model.stan
  target += normal_lpdf(b | mu_b, sigma_b);
  target += normal_lpdf(y | a + b[g] .* x, eps);
}
generated quantities {
  vector[write_y_rep ? N : 0] y_rep;
  if (write_y_rep) {
    y_rep = to_vector(normal_rng(a + b[g] .* x, eps));
  }
}
