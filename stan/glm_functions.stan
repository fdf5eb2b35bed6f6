  // Scale priors of the general model, fully normalised (the numpy densities
  // reproduce them term by term). family: 1 = uniform(0, a), 2 = half-normal(0, a),
  // 3 = half-Student-t(df = b, 0, a), 4 = exponential(rate = a).
  real glm_scale_lpdf(real s, int family, real a, real b) {
    if (family == 1) {
      return uniform_lpdf(s | 0, a);
    }
    if (family == 2) {
      return normal_lpdf(s | 0, a) + log2();
    }
    if (family == 3) {
      return student_t_lpdf(s | b, 0, a) + log2();
    }
    return exponential_lpdf(s | a);
  }
  real glm_scale_rng(int family, real a, real b) {
    if (family == 1) {
      return uniform_rng(0, a);
    }
    if (family == 2) {
      return abs(normal_rng(0, a));
    }
    if (family == 3) {
      return abs(student_t_rng(b, 0, a));
    }
    return exponential_rng(a);
  }
  // Upper bound of a scale parameter: the uniform's upper end, else none.
  real glm_scale_upper(int family, real a) {
    return family == 1 ? a : positive_infinity();
  }
  // L with Sigma = L L': diag(tau) L_Omega, or diag(tau) for independent terms.
  matrix glm_sigma_factor(vector tau, matrix L_Omega, int correlated) {
    int q = rows(tau);
    if (correlated && q > 1) {
      return diag_pre_multiply(tau, L_Omega);
    }
    return diag_matrix(tau);
  }
  // Draw u_j | beta, Sigma, sigma, y exactly (rows of the J x q result).
  // With B = M_j L and H = sigma^2 I + B'B: w ~ N(H^-1 B' d, sigma^2 H^-1), u = L w.
  matrix glm_draw_u_rng(vector beta, matrix L, real sigma, array[] matrix M,
                        array[] vector e_star, array[] matrix F, vector beta_star) {
    int J = size(M);
    int q = cols(L);
    matrix[J, q] u;
    vector[rows(beta)] delta = beta - beta_star;
    for (j in 1:J) {
      matrix[q, q] B = M[j] * L;
      matrix[q, q] LH = cholesky_decompose(add_diag(crossprod(B), square(sigma)));
      vector[q] d = e_star[j] - F[j] * delta;
      vector[q] mean_w = mdivide_right_tri_low(mdivide_left_tri_low(LH, B' * d)', LH)';
      vector[q] z = to_vector(normal_rng(rep_vector(0, q), 1));
      vector[q] w = mean_w + sigma * mdivide_right_tri_low(z', LH)';
      u[j] = (L * w)';
    }
    return u;
  }
  // Draw beta | Sigma, sigma, y exactly: beta_star + N(P^-1 g, P^-1).
  vector glm_draw_beta_rng(matrix L, real sigma, array[] matrix M, array[] vector e_star,
                           array[] matrix F, matrix C2, vector beta_star, vector beta_loc,
                           vector beta_scale) {
    int J = size(M);
    int q = cols(L);
    int p = rows(beta_star);
    real s2 = square(sigma);
    matrix[p, p] P = add_diag(C2 / s2, inv_square(beta_scale));
    vector[p] g = (beta_loc - beta_star) ./ square(beta_scale);
    for (j in 1:(q > 0 ? J : 0)) {
      matrix[q, q] LA = cholesky_decompose(add_diag(tcrossprod(M[j] * L), s2));
      matrix[q, p] FA = mdivide_left_tri_low(LA, F[j]);
      P += crossprod(FA);
      g += FA' * mdivide_left_tri_low(LA, e_star[j]);
    }
    if (p == 0) {
      return beta_star;
    }
    matrix[p, p] LP = cholesky_decompose(P);
    vector[p] w = mdivide_left_tri_low(LP, g) + to_vector(normal_rng(rep_vector(0, p), 1));
    return beta_star + mdivide_right_tri_low(w', LP)';
  }
  // ---- Vectorised forms for one or two group terms (every group at once; the loop forms
  // above serve q >= 3). Data products come from glm_vector_data.stan.
  // Sigma as a vector [Sigma11, Sigma12, Sigma22] and det(Sigma), from tau and L_Omega.
  vector glm_sigma2_vec(vector tau, matrix L_Omega, int correlated) {
    real rho = correlated ? L_Omega[2, 1] : 0;
    return [square(tau[1]), rho * tau[1] * tau[2], square(tau[2])]';
  }
  real glm_sigma2_det(vector tau, matrix L_Omega, int correlated) {
    real l22 = correlated ? L_Omega[2, 2] : 1;
    return square(tau[1] * tau[2] * l22);
  }
  // Entries of A_j^-1 for q = 2 as a J x 3 matrix [inv11, inv12, inv22], and sum_j log det A_j.
  // det A_j = s2 (s2 + tr(M Sigma M')) + det(M)^2 det(Sigma): a sum of non-negative terms,
  // so nothing cancels when Sigma or sigma is nearly singular.
  tuple(matrix, real) glm_q2_inverse(matrix MA11, matrix MA12, matrix MA22, vector detM2, vector svec,
                                     real sdet, real s2) {
    int J = rows(MA11);
    vector[J] b11 = MA11 * svec;
    vector[J] b22 = MA22 * svec;
    vector[J] a12 = MA12 * svec;
    vector[J] det = s2 * (s2 + b11 + b22) + detM2 * sdet;
    vector[J] inv_det = inv(det);
    matrix[J, 3] out;
    out[ : , 1] = (s2 + b22) .* inv_det;
    out[ : , 2] = -a12 .* inv_det;
    out[ : , 3] = (s2 + b11) .* inv_det;
    return (out, sum(log(det)));
  }
  // Symmetric p x p matrix from its packed upper triangle (row by row).
  matrix glm_unpack(vector packed, int p) {
    matrix[p, p] P;
    int k = 1;
    for (a in 1:p) {
      for (b in a:p) {
        P[a, b] = packed[k];
        P[b, a] = packed[k];
        k += 1;
      }
    }
    return P;
  }
  // Sigma's entries for q = 1 ([tau^2]) or q = 2 ([Sigma11, Sigma12, Sigma22]) and det(Sigma) (0 for q = 1):
  // the covariance arguments of hierlin_glm_marginal_ll / hierlin_glm_collapsed_ll.
  vector glm_svec(vector tau, matrix L_Omega, int correlated) {
    if (rows(tau) == 1) {
      return [square(tau[1])]';
    }
    return glm_sigma2_vec(tau, L_Omega, correlated);
  }
  real glm_sdet(vector tau, matrix L_Omega, int correlated) {
    return rows(tau) == 1 ? 0 : glm_sigma2_det(tau, L_Omega, correlated);
  }
