"""Ratings of answers: FeedbackService."""
