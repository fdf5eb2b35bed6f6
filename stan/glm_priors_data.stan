  // Priors are data: changing one needs no recompile.
  // beta[k] ~ normal(beta_loc[k], beta_scale[k]); tau[k], sigma: glm_scale_lpdf families
  // (1 uniform(0, a), 2 half-normal(a), 3 half-Student-t(df b, scale a), 4 exponential(rate a));
  // L_Omega ~ lkj_corr_cholesky(lkj_eta) for correlated terms.
  vector[p] beta_loc;
  vector<lower=0>[p] beta_scale;
  array[q] int<lower=1, upper=4> tau_family;
  vector<lower=0>[q] tau_a;
  vector<lower=0>[q] tau_b;
  int<lower=1, upper=4> sigma_family;
  real<lower=0> sigma_a;
  real<lower=0> sigma_b;
  real<lower=0> lkj_eta;
