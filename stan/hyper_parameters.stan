  real a;
  real mu_b;
  real<lower=0, upper=scale_upper(sigma_b_family, sigma_b_scale)> sigma_b;
  real<lower=0, upper=scale_upper(eps_family, eps_scale)> eps;
