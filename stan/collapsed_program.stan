data {
#include marginal_data.stan
  // Affine scaling of the unconstrained (sigma_b, eps), from least squares (model/collapse.py):
  // u = offset + multiplier * z with z the sampler's coordinate, u = logit(s / scale) for a
  // uniform(0, scale) prior, log(s) for a half-normal one; 0 and 1 give Stan's usual transform.
  // Why: Stan's diagonal-metric adaptation regularises each variance towards 1e-3 (adds ~1e-5),
  // far too wide for posteriors with sd < ~3e-3 on the unconstrained scale (eps at N = 1e7,
  // sigma_b at J = 1e6): tiny steps and long trees without it; and random inits U(-2, 2) far
  // from the mode cost minutes of warm-up at N = 1e6.
  real sigma_b_offset;
  real<lower=0> sigma_b_multiplier;
  real eps_offset;
  real<lower=0> eps_multiplier;
}
transformed data {
  int N = sum(n_group);
  int K = 0;                        // groups with Sxx > 0 (the others carry no x-information)
  for (j in 1:J) {
    K += sum_xx[j] > 0;
  }
  vector[K] sx;
  vector[K] sxx;
  vector[K] r;
  {
    int k = 1;
    for (j in 1:J) {
      if (sum_xx[j] > 0) {
        sx[k] = sum_x[j];
        sxx[k] = sum_xx[j];
        r[k] = r_star[j];
        k += 1;
      }
    }
  }
  vector[K] sx2_sxx = square(sx) ./ sxx;
  vector[K] sxr_sxx = sx .* r ./ sxx;
  real va = square(a_scale);
  real vm = square(mu_b_scale);
  real g01 = (a_loc - a_star) / va;
  real g02 = (mu_b_loc - mu_star) / vm;
  if (write_y_rep && N_rep == 0) {
    reject("write_y_rep = 1 needs the observations to replicate: N_rep > 0, x_rep, g_rep");
  }
}
parameters {
  real<offset=sigma_b_offset, multiplier=sigma_b_multiplier> sigma_b_u;
  real<offset=eps_offset, multiplier=eps_multiplier> eps_u;
}
transformed parameters {
  real<lower=0> sigma_b = scale_from_u(sigma_b_u, sigma_b_family, sigma_b_scale);
  real<lower=0> eps = scale_from_u(eps_u, eps_family, eps_scale);
}
model {
  target += scale_u_log_jacobian(sigma_b_u, sigma_b_family, sigma_b_scale);
  target += scale_u_log_jacobian(eps_u, eps_family, eps_scale);
  target += scale_prior_lpdf(sigma_b | sigma_b_family, sigma_b_scale);
  target += scale_prior_lpdf(eps | eps_family, eps_scale);
  target += hierlin_collapsed_ll(sigma_b, eps, N, sx, sxx, r, sx2_sxx, sxr_sxx, c2, rss_min, va, vm, g01, g02);
}
generated quantities {
  real a;
  real mu_b;
  vector[write_b || write_y_rep ? J : 0] b;
  vector[write_y_rep ? N_rep : 0] y_rep;
  {
    // beta = beta* + m + L^-T z, z ~ N(0, I): exactly N(beta* + m, P^-1)
    vector[5] st = hierlin_collapsed_beta(sigma_b, eps, sx, sxx, r, sx2_sxx, sxr_sxx, c2, va, vm, g01, g02);
    real z2 = std_normal_rng();
    real z1 = std_normal_rng();
    real d2 = st[5] + z2 / st[3];
    real d1 = st[4] + (z1 - st[2] * (z2 / st[3])) / st[1];
    a = a_star + d1;
    mu_b = mu_star + d2;
    if (write_b || write_y_rep) {
      // b_j | a, mu_b, sigma_b, eps, y: as marginal.stan, N(mu_b + sigma_b^2 Sxr_j / d_j, sigma_b eps / sqrt(d_j))
      real eps2 = square(eps);
      real sb2 = square(sigma_b);
      vector[J] d = eps2 + sb2 * sum_xx;
      vector[J] sxr = r_star - d1 * sum_x - d2 * sum_xx;
      b = to_vector(normal_rng(mu_b + sb2 * sxr ./ d, sqrt(sb2 * eps2 ./ d)));
    }
  }
  if (write_y_rep) {
    y_rep = to_vector(normal_rng(a + b[g_rep] .* x_rep, eps));
  }
}
