  vector<lower=0, upper=tau_upper>[q] tau;
  real<lower=0, upper=sigma_upper> sigma;
  cholesky_factor_corr[q_corr] L_Omega;
