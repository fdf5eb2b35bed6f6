  target += normal_lpdf(a | a_loc, a_scale);
  target += normal_lpdf(mu_b | mu_b_loc, mu_b_scale);
  target += scale_prior_lpdf(sigma_b | sigma_b_family, sigma_b_scale);
  target += scale_prior_lpdf(eps | eps_family, eps_scale);
