  vector[q] tau_upper;
  for (k in 1:q) {
    tau_upper[k] = glm_scale_upper(tau_family[k], tau_a[k]);
  }
  real sigma_upper = glm_scale_upper(sigma_family, sigma_a);
  int q_corr = (correlated && q > 1) ? q : 0;
