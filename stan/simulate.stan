// Simulate from the hierarchical linear regression, run with fixed_param.
// The hyperparameters are drawn from the priors (fixed = 0) or set to the given
// values (fixed = 1); then b_j ~ normal(mu_b, sigma_b), x_i ~ uniform(x_low, x_high)
// and y_i ~ normal(a + b[g_i] x_i, eps). sigma_b = 0 or eps = 0 give exact values.
// The Stan twin of hierlin_stan.simulate, and the generator of SBC.
functions {
#include priors_functions.stan
  real scale_prior_rng(int family, real scale) {
    if (family == 1) {
      return uniform_rng(0, scale);
    }
    return abs(normal_rng(0, scale));
  }
}
data {
  int<lower=1> N;
  int<lower=1> J;
  array[N] int<lower=1, upper=J> g;
  real x_low;
  real<lower=x_low> x_high;
#include priors_data.stan
  int<lower=0, upper=1> fixed;
  real a_fixed;
  real mu_b_fixed;
  real<lower=0> sigma_b_fixed;
  real<lower=0> eps_fixed;
}
generated quantities {
  real a = fixed ? a_fixed : normal_rng(a_loc, a_scale);
  real mu_b = fixed ? mu_b_fixed : normal_rng(mu_b_loc, mu_b_scale);
  real sigma_b = fixed ? sigma_b_fixed : scale_prior_rng(sigma_b_family, sigma_b_scale);
  real eps = fixed ? eps_fixed : scale_prior_rng(eps_family, eps_scale);
  vector[J] b;
  vector[N] x;
  vector[N] y;
  for (j in 1:J) {
    b[j] = sigma_b > 0 ? normal_rng(mu_b, sigma_b) : mu_b;
  }
  for (i in 1:N) {
    x[i] = uniform_rng(x_low, x_high);
    real mu = a + b[g[i]] * x[i];
    y[i] = eps > 0 ? normal_rng(mu, eps) : mu;
  }
}
