  for (k in 1:q) {
    target += glm_scale_lpdf(tau[k] | tau_family[k], tau_a[k], tau_b[k]);
  }
  target += glm_scale_lpdf(sigma | sigma_family, sigma_a, sigma_b);
  if (q_corr > 1) {
    target += lkj_corr_cholesky_lpdf(L_Omega | lkj_eta);
  }
