from django.db import models


class Team(models.Model):
    name = models.CharField(max_length=80, unique=True)


class Member(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="members")
    name = models.CharField(max_length=80)

    class Meta:
        permissions = [("approve_member", "Can approve members")]
