  // Priors are data: changing one needs no recompile.
  real a_loc;
  real<lower=0> a_scale;
  real mu_b_loc;
  real<lower=0> mu_b_scale;
  int<lower=1, upper=2> sigma_b_family;  // 1 = uniform(0, scale), 2 = half-normal(0, scale)
  real<lower=0> sigma_b_scale;
  int<lower=1, upper=2> eps_family;
  real<lower=0> eps_scale;
